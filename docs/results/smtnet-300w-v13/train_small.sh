#!/usr/bin/env bash
# #17, small, fourteenth run (2026-12-08): the twelfth run's small recipe (from v8, v8 teaching the real
# faces from clean crops, real + every turned view ending 60-80 degrees) with one change, `freeze_stacks=1`:
# the stem and the first of the two stacks keep v8's weights and BatchNorm statistics, only the last stack
# learns. Five ways of fine-tuning every layer lost the real faces at the same rate (twelfth run: real
# validation 3.664 / 3.687 / 3.706 at steps 200 / 400 / 600, v8 3.60); this asks whether fewer moving
# layers lose less of them for the same gain on the turned ones. Compare its log with
# docs/results/smtnet-300w-v11/v11_small at equal steps.
# Ran 52.7 minutes (932 steps, log in v13_small/), then stopped for the fifteenth run (smtnet-300w-v14/):
# half the real-face drift for about half the gain; the BatchNorm probe found the drift's cause.
set -e
mkdir -p runs
git show bdda93d:weights/smtnet-300w-small.safetensors > runs/small_v8.safetensors
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
M=${MINUTES:-85}
S="python -m facelandmarks_smt.training"
bash docs/results/smtnet-300w-v7/data.sh  # the eighth run's data (skipped when present)
$S select-views --synth runs/synth/train --out runs/synth/train_60_80 --min-final-yaw 60 --max-final-yaw 80
source docs/results/smtnet-300w-v8/recipe.sh  # AUG, VAL, FT
$S train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train_60_80 \
  --config small --init runs/small_v8.safetensors --teacher runs/small_v8.safetensors --out runs/v13_small \
  --cache runs/cache --max-minutes $M --threads 1 --no-progress $VAL \
  --set $FT distill_weight=0.5 distill_sources=data distill_input=clean freeze_stacks=1 val_every_steps=200 $AUG \
  > runs/v13_small.out 2>&1
