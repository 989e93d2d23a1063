#!/usr/bin/env bash
# #17, small, fifteenth run (2026-12-08): the twelfth run's small recipe (from v8, v8 teaching the real
# faces from clean crops, real + every turned view ending 60-80 degrees) with one change,
# `freeze_bn_stats=true`: every BatchNorm layer keeps v8's running statistics (eval mode) while all weights
# learn. Why: re-estimating the statistics on this mix alone, no weight changed, cost v8's held-out real
# faces +0.051 in the trainer's validation (3.631 -> 3.682; docs/results/smtnet-300w-v14/bn_probe.json),
# as much as the whole fine-tunes lost (twelfth run 3.664 at step 200). Two threads (the machine's two cores).
set -e
mkdir -p runs
git show bdda93d:weights/smtnet-300w-small.safetensors > runs/small_v8.safetensors
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
D=/work/shared/data/landmarks68/300w
M=${MINUTES:-70}  # stopped by hand after 57.5 min (step 932) to leave the session time to score it
S="python -m facelandmarks_smt.training"
bash docs/results/smtnet-300w-v7/data.sh  # the eighth run's data (skipped when present)
$S select-views --synth runs/synth/train --out runs/synth/train_60_80 --min-final-yaw 60 --max-final-yaw 80
source docs/results/smtnet-300w-v8/recipe.sh  # AUG, VAL, FT
$S train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train_60_80 \
  --config small --init runs/small_v8.safetensors --teacher runs/small_v8.safetensors --out runs/v14_small \
  --cache runs/cache --max-minutes $M --threads 2 --no-progress $VAL \
  --set $FT distill_weight=0.5 distill_sources=data distill_input=clean freeze_bn_stats=true val_every_steps=200 $AUG \
  > runs/v14_small.out 2>&1
