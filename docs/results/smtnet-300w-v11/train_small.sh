#!/usr/bin/env bash
# #17, twelfth CPU run, small (AVX-512 BF16 machine, bf16 training, one thread, seed 0), beside train_tiny.sh:
# from the shipped small v8 with v8 itself teaching the real faces (learning without forgetting, as in the
# eleventh run), with two changes:
#   - new switch `--set distill_input=clean`: the teacher sees each real crop *without* its blur, colour,
#     occlusion and degradations, so it teaches its clean answer as the target of the degraded crop (the
#     eleventh run's teacher saw the degraded crop and taught its worse answers there: the run learnt less on
#     heavily degraded copies than the plain fine-tune, 5.96 against 5.74);
#   - the turned views are every view of views 0-3 that ends 60-80 degrees from frontal (train_tiny.sh).
set -e
mkdir -p runs
git show bdda93d:weights/smtnet-300w-small.safetensors > runs/small_v8.safetensors
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
M=${MINUTES:-80}
S="python -m facelandmarks_smt.training"
$S select-views --synth runs/synth/train --out runs/synth/train_60_80 --min-final-yaw 60 --max-final-yaw 80
source docs/results/smtnet-300w-v8/recipe.sh  # AUG, VAL, FT
$S train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train_60_80 \
  --config small --init runs/small_v8.safetensors --teacher runs/small_v8.safetensors --out runs/v11_small \
  --cache runs/cache --max-minutes $M --threads 1 --no-progress $VAL \
  --set $FT distill_weight=0.5 distill_sources=data distill_input=clean val_every_steps=200 $AUG \
  > runs/v11_small.out 2>&1
