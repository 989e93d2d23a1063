#!/usr/bin/env bash
# #17, ninth run, after train.sh: points on the line between each shipped start and its fine-tune
# (iterated WiSE-FT: the start is now the shipped interpolated model itself), scored on every validation
# part (gt boxes, torch fp32, one thread each, both at once):
#   small: v7 (63bcdc8) -> v8_small's last EMA weights
#   tiny:  v2 (63bcdc8) -> v8_tiny's last EMA weights
# Rule fixed before any point was scored, the eighth run's bars: held-out real faces <= 3.62 (small: v5's
# 3.589 + 0.03) / <= 4.034 (tiny: v1's 4.004 + 0.03), then the lowest NME over all validation faces
# (val_all) wins, and a point ships only if it also beats the shipped model (v7 / v2) on val_all and
# then meets the common-set gate (small <= 3.40, tiny <= 3.75; evaluate.sh).
set -e
mkdir -p runs/soup8
S="python -m facelandmarks_smt.training"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
$S export --weights runs/v8_small/last.pt --out runs/soup8/small_end.safetensors
$S export --weights runs/v8_tiny/last.pt --out runs/soup8/tiny_end.safetensors
for a in ${SMALL_ALPHAS:-0.3 0.5 0.7}; do
  $S interpolate --start runs/small_v7.safetensors --tuned runs/soup8/small_end.safetensors --alpha $a \
    --out runs/soup8/small_a$a.safetensors
done
for a in ${TINY_ALPHAS:-0.2 0.4 0.6}; do
  $S interpolate --start runs/tiny_v2.safetensors --tuned runs/soup8/tiny_end.safetensors --alpha $a \
    --out runs/soup8/tiny_a$a.safetensors
done
EVAL="python benchmarks/robustness_eval.py --no-common --data-root /work/shared/data/landmarks68/300w \
  --val-list docs/results/smtnet-300w-small-v5/data_lists.json --synth-val runs/synth/val_80 \
  --degraded runs/degraded_val1 --degraded-hard runs/degraded_val_hard"
$EVAL --weights runs/small_v7.safetensors $(ls runs/soup8/small_a*.safetensors) runs/soup8/small_end.safetensors \
  --out docs/results/smtnet-300w-v8/validation_small.json > runs/val8_small.md &
$EVAL --weights runs/tiny_v2.safetensors $(ls runs/soup8/tiny_a*.safetensors) runs/soup8/tiny_end.safetensors \
  --out docs/results/smtnet-300w-v8/validation_tiny.json > runs/val8_tiny.md &
wait
