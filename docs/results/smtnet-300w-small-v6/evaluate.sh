#!/usr/bin/env bash
# After interpolate.sh: export the chosen point (alpha 0.5) fp16 and check the issue-17 gate on the
# 300-W common set (small <= 3.40; reporting only, after the selection): 3.379 -> shipped as v6.
set -e
D=/work/shared/data/landmarks68/300w
S="python -m facelandmarks_smt.training"
OUT=docs/results/smtnet-300w-small-v6
$S export --weights runs/soup/a0.5.safetensors --out weights/smtnet-300w-small.safetensors --half \
  --name smtnet-300w-small \
  --licence "300-W (iBUG, Imperial College London) and the Surrey Face Model (University of Surrey): non-commercial research only"
for b in gt detector; do
  $S evaluate --weights weights/smtnet-300w-small.safetensors --data $D/helen/testset $D/lfpw/testset \
    --out runs/v6_eval/common_$b --boxes $b --no-progress
done
$S evaluate --weights weights/smtnet-300w-small.safetensors --data $D/helen/testset $D/lfpw/testset \
  --out runs/v6_eval/common_flip --boxes gt --flip-test --no-progress
cp runs/v6_eval/common_gt/report.json $OUT/eval_common_gt_fp16.json
cp runs/v6_eval/common_detector/report.json $OUT/eval_common_yunet_fp16.json
cp runs/v6_eval/common_flip/report.json $OUT/eval_common_flip_fp16.json
cp runs/v6_eval/common_gt/ced.png $OUT/ced_common_gt.png
