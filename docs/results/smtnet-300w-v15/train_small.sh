#!/usr/bin/env bash
# #17, small, seventeenth CPU run (2026-12-08, one thread, beside the sixteenth run's tiny): the fifteenth run's
# recipe (from v8, v8 teaching the real faces from clean crops, real + every turned view ending 60-80 degrees,
# freeze_bn_stats=true) plus the fourteenth run's `freeze_stacks=1` (stem + first stack keep v8's weights).
# Why: at step 932 each switch alone cut the real-face drift of the twelfth run (3.736): BatchNorm statistics
# frozen 3.717 (and better everywhere else), the first stack frozen 3.692 (but half the gain); together they
# might keep the real faces nearer v8 (3.631 in the trainer's bf16 validation) with most of the gain.
set -e
mkdir -p runs
git show bdda93d:weights/smtnet-300w-small.safetensors > runs/small_v8.safetensors
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
M=${MINUTES:-80}
S="python -m facelandmarks_smt.training"
bash docs/results/smtnet-300w-v7/data.sh  # the eighth run's data (skipped when present)
$S select-views --synth runs/synth/train --out runs/synth/train_60_80 --min-final-yaw 60 --max-final-yaw 80
source docs/results/smtnet-300w-v8/recipe.sh  # AUG, VAL, FT
$S train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train_60_80 \
  --config small --init runs/small_v8.safetensors --teacher runs/small_v8.safetensors --out runs/v15_small \
  --cache runs/cache --max-minutes $M --threads 1 --no-progress $VAL \
  --set $FT distill_weight=0.5 distill_sources=data distill_input=clean freeze_bn_stats=true freeze_stacks=1 \
  val_every_steps=200 $AUG > runs/v15_small.out 2>&1
