#!/usr/bin/env bash
# #17, thirteenth run, after train_tiny.sh: tiny's candidates scored on every validation part (gt boxes,
# torch fp32, one thread): the run's last EMA weights and points on the line tiny v5 (a11f34d) -> them,
# alphas 0.3 0.5 0.7.
# Rule fixed before any point was scored, the eighth run's bar: held-out real faces <= 4.034, then the
# lowest NME over all validation faces (val_all) wins, and it ships only if it also beats tiny v5 there
# (6.446) and then meets the common-set gate (<= 3.75; evaluate.sh).
set -e
mkdir -p runs/soup12
S="python -m facelandmarks_smt.training"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
$S export --weights runs/v12_tiny/last.pt --out runs/soup12/tiny_a1.0.safetensors
for a in 0.3 0.5 0.7; do
  $S interpolate --start runs/tiny_v5.safetensors --tuned runs/soup12/tiny_a1.0.safetensors --alpha $a \
    --out runs/soup12/tiny_a$a.safetensors
done
python benchmarks/robustness_eval.py --no-common --data-root /work/shared/data/landmarks68/300w \
  --val-list docs/results/smtnet-300w-small-v5/data_lists.json --synth-val runs/synth/val_80 \
  --degraded runs/degraded_val1 --degraded-hard runs/degraded_val_hard \
  --weights runs/tiny_v5.safetensors $(ls runs/soup12/tiny_a*.safetensors) \
  --out docs/results/smtnet-300w-v12/validation_tiny.json > runs/val12_tiny.md
