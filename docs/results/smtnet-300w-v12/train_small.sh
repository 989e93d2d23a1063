#!/usr/bin/env bash
# #17, small, prepared in the thirteenth run's session, not yet run (the two cores ran tiny's fine-tune and
# an NNCF search): the twelfth run's small recipe (from v8, v8 teaching the real faces from clean crops,
# real + every turned view ending 60-80 degrees) with one change, `distill_flip=true`: the teacher is v8
# *with the flip test* (its crop's and the mirrored crop's heatmaps averaged), which is better than v8
# alone (300-W common set 3.17 against 3.37), so the real faces get targets better than the model's own
# answers. The twelfth run's log (docs/results/smtnet-300w-v11/v11_small) is the same run without the flip:
# compare the real-face validation at equal steps (200, 400, 600).
# Probed for 25 minutes (two threads) at the end of that session: real faces 3.657 / 3.681 at steps 200 / 400
# against 3.664 / 3.687 without the flip (docs/training.md): no real difference, so not worth the 90 minutes.
set -e
mkdir -p runs
git show bdda93d:weights/smtnet-300w-small.safetensors > runs/small_v8.safetensors
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
M=${MINUTES:-90}
S="python -m facelandmarks_smt.training"
bash docs/results/smtnet-300w-v7/data.sh  # the eighth run's data (skipped when present)
$S select-views --synth runs/synth/train --out runs/synth/train_60_80 --min-final-yaw 60 --max-final-yaw 80
source docs/results/smtnet-300w-v8/recipe.sh  # AUG, VAL, FT
$S train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train_60_80 \
  --config small --init runs/small_v8.safetensors --teacher runs/small_v8.safetensors --out runs/v12_small \
  --cache runs/cache --max-minutes $M --threads 1 --no-progress $VAL \
  --set $FT distill_weight=0.5 distill_sources=data distill_input=clean distill_flip=true val_every_steps=200 $AUG \
  > runs/v12_small.out 2>&1
