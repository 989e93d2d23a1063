#!/usr/bin/env bash
# #6 ablation, equal budget, 1 thread each, both fine-tuned from shipped v3 with v3's recipe:
# (a) 300-W training part only, (b) + YouTube-Faces frames (training only; same validation split)
# (a) is shipped as v4 (runs/ft_300w); (b)'s record is in ytf_half/. Ran at commit 979c1f3, when
# weights/smtnet-300w-small.safetensors was v3 (sha256 257e4ff6...a1c); to rerun later, take v3 from git:
mkdir -p runs && git show 4837b81:weights/smtnet-300w-small.safetensors > runs/small_v3.safetensors
D=/work/shared/data/landmarks68/300w
COMMON="--config small --init runs/small_v3.safetensors --cache runs/cache --max-minutes 56 --threads 1 --no-progress \
  --set model.crop_factor=1.3 optimizer=adamw weight_decay=0 lr=0.0005 sigma_mode=fixed sigmas=[2] \
        epochs=1000 lr_milestones=[] lr_milestone_fractions=[0.6,0.85] lr_gamma=0.2 ema_decay=0.998 \
        augment.scale=0.1 augment.occlusion_prob=0.25 augment.motion_blur_prob=0.1 augment.color_prob=0.4 \
        augment.grey_prob=0.1 augment.jpeg_prob=0.2"
python -m facelandmarks_smt.training train --data $D/afw $D/helen/trainset $D/lfpw/trainset \
  --out runs/ft_300w $COMMON
python -m facelandmarks_smt.training train --data $D/afw $D/helen/trainset $D/lfpw/trainset \
  --extra-data /work/shared/data/landmarks68/ytf/train --out runs/ft_ytf $COMMON
