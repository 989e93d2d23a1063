#!/usr/bin/env bash
# #17: smtnet-300w-small v6 = the weight-space midpoint of small v5 and smtnet-300w-small-wild
# (WiSE-FT: wild was fine-tuned from v5, so the two lie in one basin). No training: three points on
# the line, alpha 0.3 / 0.5 / 0.7 (0 = v5, 1 = wild), each scored on the validation parts the runs
# select on (the 201 held-out real faces, their 470 turned views, one degraded copy of each), with
# the selection rule fixed before looking (the same as train.sh's): real faces <= 3.62, then the
# lowest NME over all 872 faces. alpha 0.5 won; its common-set gate is checked in evaluate.sh.
# Needs train.sh's data steps (runs/synth/val_80, runs/degraded_val1).
set -e
mkdir -p runs/soup
git show c9e0fe7:weights/smtnet-300w-small.safetensors > runs/small_v5.safetensors
git show 6f78986:weights/smtnet-300w-small-wild.safetensors > runs/small_wild.safetensors
S="python -m facelandmarks_smt.training"
for a in 0.3 0.5 0.7; do
  $S interpolate --start runs/small_v5.safetensors --tuned runs/small_wild.safetensors --alpha $a \
    --out runs/soup/a$a.safetensors
done
OMP_NUM_THREADS=1 python benchmarks/robustness_eval.py --no-common \
  --weights runs/small_v5.safetensors runs/soup/a0.3.safetensors runs/soup/a0.5.safetensors \
            runs/soup/a0.7.safetensors runs/small_wild.safetensors \
  --data-root /work/shared/data/landmarks68/300w --val-list docs/results/smtnet-300w-small-v5/data_lists.json \
  --synth-val runs/synth/val_80 --degraded runs/degraded_val1 --out docs/results/smtnet-300w-small-v6/validation_interpolation.json
