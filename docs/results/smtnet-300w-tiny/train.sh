#!/usr/bin/env bash
# smtnet-300w-tiny: distilled from smtnet-300w-small v3 (teacher), from scratch, 1 thread (a small fine-tune ran beside it).
# Ran from the repo root at commit 979c1f3, when weights/smtnet-300w-small.safetensors was v3
# (sha256 257e4ff6e1428ee9c2f229cb7aa0a8922dc581a18948b169a769f632c5842a1c); to rerun later, take v3 from git:
mkdir -p runs && git show 4837b81:weights/smtnet-300w-small.safetensors > runs/small_v3.safetensors
D=/work/shared/data/landmarks68/300w
exec python -m facelandmarks_smt.training train \
  --data $D/afw $D/helen/trainset $D/lfpw/trainset \
  --config small --teacher runs/small_v3.safetensors \
  --out runs/tiny --cache runs/cache --max-minutes 118 --threads 1 --no-progress \
  --set model.preset=tiny model.crop_factor=1.3 distill_weight=0.5 lr=0.001 'sigmas=[3,2]' \
        'stage_epochs=[500,500]' epochs=1000 'lr_milestones=[]' 'stage_time_fractions=[0.45,0.55]' \
        'lr_milestone_fractions=[0.8]' lr_gamma=0.2 ema_decay=0.998 ema_warmup=true
