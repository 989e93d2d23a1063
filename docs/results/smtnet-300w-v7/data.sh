#!/usr/bin/env bash
# #17, the data of the eighth and ninth runs (resumable; each step skips what is present): turned views
# of the training faces (eos + Surrey Face Model), turned views and two degraded copies of the held-out
# faces, and the view selections the runs train and validate on. Called by train.sh here and in
# docs/results/smtnet-300w-v8/.
set -e
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
L=docs/results/smtnet-300w-small-v5/data_lists.json   # the seed-0 split of v5, small-wild and tiny
S="python -m facelandmarks_smt.training"
E=${EOS_MODEL:-/work/shared/models/eos_sfm}
# as small-wild's train.sh, plus the harder degraded copies
for k in 0 1; do
  $S synthesize-poses --data $D/afw $D/helen/trainset $D/lfpw/trainset --eos-model $E --max-yaw 90 --seed 0 \
     --out runs/synth/train --views 4 --only $L:train --no-progress --shard $k/2 &
done
wait
$S synthesize-poses --data $D/afw $D/helen/trainset $D/lfpw/trainset --eos-model $E --max-yaw 90 --seed 1 \
   --out runs/synth/val --views 3 --only $L:val --no-progress
$S degrade --data $D/afw $D/helen/trainset $D/lfpw/trainset --out runs/degraded_val1 --per-face 1 --only $L:val \
   --seed 0 --no-progress
$S degrade --data $D/afw $D/helen/trainset $D/lfpw/trainset --out runs/degraded_val_hard --per-face 1 --only $L:val \
   --seed 2 --severity 1 2 --no-progress
# views turned past 80 degrees are dropped (see small-wild's run); links, so nothing is copied
$S select-views --synth runs/synth/train --out runs/synth/train_80
$S select-views --synth runs/synth/train --out runs/synth/train_80_v0 --views 0
$S select-views --synth runs/synth/val --out runs/synth/val_80
