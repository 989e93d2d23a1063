#!/usr/bin/env bash
# #17: a 22-minute probe (stopped at 18 min, step 400): the fifteenth run with distill_weight 0.8 (v8 teaching the real faces more strongly)
mkdir -p runs
set -e
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
D=/work/shared/data/landmarks68/300w
source docs/results/smtnet-300w-v8/recipe.sh
python -m facelandmarks_smt.training train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train_60_80 \
  --config small --init runs/small_v8.safetensors --teacher runs/small_v8.safetensors --out runs/v14b_probe \
  --cache runs/cache --max-minutes 22 --threads 2 --no-progress $VAL \
  --set $FT distill_weight=0.8 distill_sources=data distill_input=clean freeze_bn_stats=true val_every_steps=200 $AUG \
  > runs/v14b_probe.out 2>&1
