#!/usr/bin/env bash
# #17, after the fifteenth run: is the fifteenth run's end (v14_small's last EMA weights, runs/soup14/small_a1.0;
# validation all 6.099, real 3.710) a better opt-in `smtnet-300w-small-wild` than the shipped v1?
# Rule fixed before small-wild v1 was scored on today's validation parts: it replaces v1 only if it is lower on
# all three of val_all, val_real and val_synth (gt boxes, torch fp32, one thread); then its common-set NME is
# reported in the card (small-wild is opt-in: the default's 3.40 gate does not apply to it).
set -e
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
python benchmarks/robustness_eval.py --no-common --data-root /work/shared/data/landmarks68/300w \
  --val-list docs/results/smtnet-300w-small-v5/data_lists.json --synth-val runs/synth/val_80 \
  --degraded runs/degraded_val1 --degraded-hard runs/degraded_val_hard \
  --weights weights/smtnet-300w-small-wild.safetensors \
  --out docs/results/smtnet-300w-v14/validation_small_wild_v1.json > runs/val14/wild_v1.md
