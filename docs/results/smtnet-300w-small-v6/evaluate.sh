#!/usr/bin/env bash
# After train.sh: pick the run with the lower best validation NME (all validation parts together;
# the 300-W common set is never used to choose), export it fp16, and measure what the model card
# reports. RUN=runs/v6_mix1 or runs/v6_mix4 (the choice, recorded in docs/training.md).
set -e
RUN=${RUN:?set RUN to the chosen run folder}
D=/work/shared/data/landmarks68/300w
S="python -m facelandmarks_smt.training"
OUT=docs/results/smtnet-300w-small-v6
python -m facelandmarks_smt.training export --weights $RUN/best.safetensors \
  --out weights/smtnet-300w-small.safetensors --half --name smtnet-300w-small \
  --licence "300-W (iBUG, Imperial College London) and the Surrey Face Model (University of Surrey): non-commercial research only"
$S evaluate --weights weights/smtnet-300w-small.safetensors --data $D/helen/testset $D/lfpw/testset \
  --out runs/v6_eval/common_gt --boxes gt --no-progress
$S evaluate --weights $RUN/best.safetensors --data $D/helen/testset $D/lfpw/testset \
  --out runs/v6_eval/common_gt_fp32 --boxes gt --no-progress
$S evaluate --weights weights/smtnet-300w-small.safetensors --data $D/helen/testset $D/lfpw/testset \
  --out runs/v6_eval/common_gt_flip --boxes gt --flip-test --no-progress
$S evaluate --weights weights/smtnet-300w-small.safetensors --data $D/helen/testset $D/lfpw/testset \
  --out runs/v6_eval/common_yunet --boxes detector --no-progress
for p in common_gt common_gt_fp32 common_gt_flip common_yunet; do cp runs/v6_eval/$p/report.json $OUT/eval_${p}.json; done
cp runs/v6_eval/common_gt/ced.png $OUT/ced_common_gt.png
# every part of the hard validation set, v5 against v6 (per |yaw| bin, per degradation kind)
python benchmarks/robustness_eval.py --weights runs/small_v5.safetensors weights/smtnet-300w-small.safetensors \
  --data-root $D --val-list docs/results/smtnet-300w-small-v5/data_lists.json \
  --synth-val runs/synth/val_80 --degraded runs/degraded_val --out $OUT/robustness_v5_v6.json
