#!/usr/bin/env bash
# #17, tenth run, ablation after the fact: tiny v2 fine-tuned at crop 1.2 on the same data and recipe as
# train.sh's tiny run but WITHOUT the teacher, 36 minutes on one thread (about the same number of steps as the
# distilled run made in 80 minutes, since the teacher halves the speed; the lr drops at 50 % / 80 % of the budget
# land at about the same steps). Its validation log is compared with v9_tiny at equal steps.
set -e
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
source docs/results/smtnet-300w-v8/recipe.sh  # AUG, VAL, FT
python -m facelandmarks_smt.training train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train_80_v2 \
  --config small --init runs/tiny_v2.safetensors --out runs/v9_tiny_noteacher \
  --cache runs/cache --max-minutes ${MINUTES:-36} --threads 1 --no-progress $VAL \
  --set model.preset=tiny model.crop_factor=1.2 $FT val_every_steps=300 $AUG
