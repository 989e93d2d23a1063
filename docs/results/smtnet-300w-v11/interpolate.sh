#!/usr/bin/env bash
# #17, twelfth run, after train_tiny.sh and train_small.sh: the candidates, scored on every validation part
# (gt boxes, torch fp32, one thread each, both at once):
#   small: v11_small's last EMA weights and points on the line small v8 (bdda93d) -> them, alphas 0.3 0.5 0.7;
#   tiny:  v11_tiny's last EMA weights and points on the line tiny v4 (5adcbc6) -> them, alphas 0.3 0.5 0.7.
# Rule fixed before any point was scored, the eighth run's bars: held-out real faces <= 3.62 (small) /
# <= 4.034 (tiny), then the lowest NME over all validation faces (val_all) wins, and a point ships only if it
# also beats the shipped model (small v8 / tiny v4) on val_all and then meets the common-set gate (small
# <= 3.40, tiny <= 3.75; evaluate.sh).
set -e
mkdir -p runs/soup11
S="python -m facelandmarks_smt.training"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
$S export --weights runs/v11_small/last.pt --out runs/soup11/small_a1.0.safetensors
$S export --weights runs/v11_tiny/last.pt --out runs/soup11/tiny_a1.0.safetensors
for a in 0.3 0.5 0.7; do
  $S interpolate --start runs/small_v8.safetensors --tuned runs/soup11/small_a1.0.safetensors --alpha $a \
    --out runs/soup11/small_a$a.safetensors
  $S interpolate --start runs/tiny_v4.safetensors --tuned runs/soup11/tiny_a1.0.safetensors --alpha $a \
    --out runs/soup11/tiny_a$a.safetensors
done
EVAL="python benchmarks/robustness_eval.py --no-common --data-root /work/shared/data/landmarks68/300w \
  --val-list docs/results/smtnet-300w-small-v5/data_lists.json --synth-val runs/synth/val_80 \
  --degraded runs/degraded_val1 --degraded-hard runs/degraded_val_hard"
$EVAL --weights runs/small_v8.safetensors $(ls runs/soup11/small_a*.safetensors) \
  --out docs/results/smtnet-300w-v11/validation_small.json > runs/val11_small.md &
$EVAL --weights runs/tiny_v4.safetensors $(ls runs/soup11/tiny_a*.safetensors) \
  --out docs/results/smtnet-300w-v11/validation_tiny.json > runs/val11_tiny.md &
wait
