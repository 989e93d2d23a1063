#!/usr/bin/env bash
# #17, after train_tiny.sh and train_small.sh (sixteenth and seventeenth runs): the candidates, scored on every
# validation part (gt boxes, torch fp32, one thread each, the two models' candidates at once on the two cores):
# each run's last EMA weights and points on the line from its start (tiny v6 at 40a3157, small v8 at bdda93d)
# to them, alphas 0.3 0.5 0.7.
# Rules fixed before any point was scored (the eighth run's bars, as for the twelfth to fifteenth runs):
# held-out real faces <= 4.034 (tiny) / <= 3.62 (small), then the lowest NME over all validation faces
# (val_all) wins; it ships only if it also beats its start on val_all (the start scored in the same run) and
# then meets the common-set gate (tiny <= 3.75, small <= 3.40; evaluate.sh).
set -e
mkdir -p runs/soup15 runs/val15
S="python -m facelandmarks_smt.training"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
for m in tiny small; do
  start=runs/${m}_v6.safetensors; [ $m = small ] && start=runs/small_v8.safetensors
  $S export --weights runs/v15_$m/last.pt --out runs/soup15/${m}_a1.0.safetensors
  for a in 0.3 0.5 0.7; do
    $S interpolate --start $start --tuned runs/soup15/${m}_a1.0.safetensors --alpha $a --out runs/soup15/${m}_a$a.safetensors
  done
done
EVAL="python benchmarks/robustness_eval.py --no-common --data-root /work/shared/data/landmarks68/300w \
  --val-list docs/results/smtnet-300w-small-v5/data_lists.json --synth-val runs/synth/val_80 \
  --degraded runs/degraded_val1 --degraded-hard runs/degraded_val_hard"
taskset -c 0 $EVAL --weights runs/tiny_v6.safetensors $(ls runs/soup15/tiny_a*.safetensors) \
  --out docs/results/smtnet-300w-v15/validation_tiny.json > runs/val15/tiny.md &
taskset -c 1 $EVAL --weights runs/small_v8.safetensors $(ls runs/soup15/small_a*.safetensors) \
  --out docs/results/smtnet-300w-v15/validation_small.json > runs/val15/small.md &
wait
