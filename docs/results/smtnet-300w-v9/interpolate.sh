#!/usr/bin/env bash
# #17, tenth run, after train.sh: the candidates, scored on every validation part (gt boxes, torch fp32, one
# thread each, both at once):
#   small: points on the line small v8 (bdda93d) -> v9_small's last EMA weights, alphas 0.2 0.3 0.5
#          (a third round of iterated WiSE-FT);
#   tiny:  v9_tiny's last EMA weights themselves (tiny_a1.0): the run moved tiny to crop factor 1.2, so the
#          line back to v2 (crop 1.3) mixes two crops and is not scored.
# Rule fixed before any point was scored, the eighth run's bars: held-out real faces <= 3.62 (small) /
# <= 4.034 (tiny), then the lowest NME over all validation faces (val_all) wins, and a point ships only if it
# also beats the shipped model (small v8 / tiny v2) on val_all and then meets the common-set gate (small
# <= 3.40, tiny <= 3.75; evaluate.sh).
set -e
mkdir -p runs/soup9
S="python -m facelandmarks_smt.training"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
$S export --weights runs/v9_small/last.pt --out runs/soup9/small_end.safetensors
$S export --weights runs/v9_tiny/last.pt --out runs/soup9/tiny_a1.0.safetensors
for a in ${SMALL_ALPHAS:-0.2 0.3 0.5}; do
  $S interpolate --start runs/small_v8.safetensors --tuned runs/soup9/small_end.safetensors --alpha $a \
    --out runs/soup9/small_a$a.safetensors
done
EVAL="python benchmarks/robustness_eval.py --no-common --data-root /work/shared/data/landmarks68/300w \
  --val-list docs/results/smtnet-300w-small-v5/data_lists.json --synth-val runs/synth/val_80 \
  --degraded runs/degraded_val1 --degraded-hard runs/degraded_val_hard"
$EVAL --weights runs/small_v8.safetensors $(ls runs/soup9/small_a*.safetensors) runs/soup9/small_end.safetensors \
  --out docs/results/smtnet-300w-v9/validation_small.json > runs/val9_small.md &
$EVAL --weights runs/tiny_v2.safetensors runs/soup9/tiny_a1.0.safetensors \
  --out docs/results/smtnet-300w-v9/validation_tiny.json > runs/val9_tiny.md &
wait
