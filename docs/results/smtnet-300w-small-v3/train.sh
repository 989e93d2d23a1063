#!/usr/bin/env bash
# smtnet-300w-small v3: fine-tune from the shipped v2 weights, sigma 2 only, lr 5e-4 (x0.2 at 60 % and 85 % of the budget).
# --init was v2 (sha256 94022d18d1e0772dc1f0d4b44d40c13e38294ae31e6343ad6af06a5b20a3e04c), then at
# weights/smtnet-300w-small.safetensors: `git show c927feb:weights/smtnet-300w-small.safetensors > v2.safetensors`.
# Run from the repo root at commit b262235; 125 min, bf16 autocast + channels_last (AMD EPYC, 2 cores, AVX-512 BF16).
D=/work/shared/data/landmarks68/300w
exec python -m facelandmarks_smt.training train \
  --data $D/afw $D/helen/trainset $D/lfpw/trainset \
  --config small --init weights/smtnet-300w-small.safetensors \
  --out runs/small_v3 --cache runs/cache --max-minutes 125 --threads 2 --no-progress \
  --set model.crop_factor=1.3 optimizer=adamw weight_decay=0 lr=0.0005 sigma_mode=fixed 'sigmas=[2]' \
        epochs=1000 'lr_milestones=[]' 'lr_milestone_fractions=[0.6,0.85]' lr_gamma=0.2 ema_decay=0.998 \
        augment.scale=0.1 augment.occlusion_prob=0.25 augment.motion_blur_prob=0.1 augment.color_prob=0.4 \
        augment.grey_prob=0.1 augment.jpeg_prob=0.2
