#!/usr/bin/env bash
# #17: the BatchNorm-statistics probe of small v8 (bn_probe.json); writes runs/bn_probe/result.json
mkdir -p runs/bn_probe
set -e
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
source docs/results/smtnet-300w-v8/recipe.sh
python docs/results/smtnet-300w-v14/bn_probe.py train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train_60_80 \
  --config small --init runs/small_v8.safetensors --out runs/bn_probe/out \
  --cache runs/cache --threads 1 --no-progress $VAL --set $FT ema_decay=0 $AUG
