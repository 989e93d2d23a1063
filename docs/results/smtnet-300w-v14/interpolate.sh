#!/usr/bin/env bash
# #17, fifteenth run, after train_small.sh: the candidates, scored on every validation part (gt boxes,
# torch fp32, one thread each, two at once): v14_small's last EMA weights and points on the line small v8
# (bdda93d) -> them, alphas 0.3 0.5 0.7.
# Rule fixed before any point was scored (the eighth run's bars, as for the twelfth and thirteenth runs):
# held-out real faces <= 3.62, then the lowest NME over all validation faces (val_all) wins, and a point
# ships only if it also beats small v8 on val_all and then meets the common-set gate (<= 3.40; evaluate.sh).
set -e
mkdir -p runs/soup14 runs/val14
S="python -m facelandmarks_smt.training"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
$S export --weights runs/v14_small/last.pt --out runs/soup14/small_a1.0.safetensors
for a in 0.3 0.5 0.7; do
  $S interpolate --start runs/small_v8.safetensors --tuned runs/soup14/small_a1.0.safetensors --alpha $a \
    --out runs/soup14/small_a$a.safetensors
done
EVAL="python benchmarks/robustness_eval.py --no-common --data-root /work/shared/data/landmarks68/300w \
  --val-list docs/results/smtnet-300w-small-v5/data_lists.json --synth-val runs/synth/val_80 \
  --degraded runs/degraded_val1 --degraded-hard runs/degraded_val_hard"
taskset -c 0 $EVAL --weights runs/small_v8.safetensors runs/soup14/small_a0.5.safetensors runs/soup14/small_a1.0.safetensors \
  --out runs/val14/a.json > runs/val14/a.md &
taskset -c 1 $EVAL --weights runs/soup14/small_a0.3.safetensors runs/soup14/small_a0.7.safetensors \
  --out runs/val14/b.json > runs/val14/b.md &
wait
python - <<'PY'
import json
a, b = json.load(open("runs/val14/a.json")), json.load(open("runs/val14/b.json"))
a["models"].update(b["models"])
a["note"] = "two processes (one core each); models merged into one file"
json.dump(a, open("docs/results/smtnet-300w-v14/validation_small.json", "w"), indent=1)
PY
