#!/usr/bin/env bash
# smtnet-300w-small v2: fine-tune from the shipped v1 weights with the revised recipe.
# --init was v1 (sha256 b01b4d4efed13f30dbd7ea5b6326ded69558783c11283e0ee8ffe7205e2f725f), then at
# weights/smtnet-300w-small.safetensors: `git show 167fc84:weights/smtnet-300w-small.safetensors > v1.safetensors`.
# Run from the repo root at commit df25e75 (git_commit in the weights' metadata); 130 min, fp32 (AVX2-only CPU).
D=/work/shared/data/landmarks68/300w
exec python -m facelandmarks_smt.training train \
  --data $D/afw $D/helen/trainset $D/lfpw/trainset \
  --config small --init weights/smtnet-300w-small.safetensors \
  --out runs/small_v2 --cache runs/cache --max-minutes 130 --threads 2 \
  --set model.crop_factor=1.3 optimizer=adamw weight_decay=0 lr=0.001 'sigmas=[3,2]' \
        'stage_epochs=[200,200]' epochs=400 'lr_milestones=[]' 'stage_time_fractions=[0.4,0.6]' \
        'lr_milestone_fractions=[0.7,0.9]' lr_gamma=0.2 ema_decay=0.998 \
        augment.scale=0.1 augment.occlusion_prob=0.25 augment.motion_blur_prob=0.1 augment.color_prob=0.4 \
        augment.grey_prob=0.1 augment.jpeg_prob=0.2
