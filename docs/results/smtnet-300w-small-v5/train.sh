#!/usr/bin/env bash
# #6: crop factor 1.3 vs 1.2, equal budget (122 min each, one thread each, both at once, seed 0),
# both fine-tuned from shipped v4 with v3/v4's recipe; only model.crop_factor differs.
# Ran at commit b2efbcf, when weights/smtnet-300w-small.safetensors was v4 (sha256 8f7965ad...41db);
# to rerun later, take v4 from git:
mkdir -p runs && git show e3f50c3:weights/smtnet-300w-small.safetensors > runs/small_v4.safetensors
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
COMMON="--config small --init runs/small_v4.safetensors --cache runs/cache --max-minutes 122 --threads 1 --no-progress \
  --set optimizer=adamw weight_decay=0 lr=0.0005 sigma_mode=fixed sigmas=[2] \
        epochs=1000 lr_milestones=[] lr_milestone_fractions=[0.6,0.85] lr_gamma=0.2 ema_decay=0.998 \
        augment.scale=0.1 augment.occlusion_prob=0.25 augment.motion_blur_prob=0.1 augment.color_prob=0.4 \
        augment.grey_prob=0.1 augment.jpeg_prob=0.2"
python -m facelandmarks_smt.training train --data $D/afw $D/helen/trainset $D/lfpw/trainset \
  --out runs/v5_crop13 $COMMON model.crop_factor=1.3 > runs/v5_crop13.out 2>&1 &
sleep 20
python -m facelandmarks_smt.training train --data $D/afw $D/helen/trainset $D/lfpw/trainset \
  --out runs/v5_crop12 $COMMON model.crop_factor=1.2 > runs/v5_crop12.out 2>&1 &
wait
