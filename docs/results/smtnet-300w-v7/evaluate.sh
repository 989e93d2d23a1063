#!/usr/bin/env bash
# After interpolate.sh: export a chosen point fp16 and check issue 17's gate on the 300-W common set
# (reporting only, after the selection on validation): small <= 3.40, tiny <= 3.75.
#   bash evaluate.sh tiny 0.3     (chosen: the only tiny point under the bar)
#   bash evaluate.sh small A
# RUN=8 / RUN=9 (as docs/results/smtnet-300w-v8/ and -v9/evaluate.sh set it) evaluate the ninth / tenth run's points instead.
set -e
MODEL=$1 ALPHA=$2 RUN=${RUN:-7}
D=/work/shared/data/landmarks68/300w
S="python -m facelandmarks_smt.training"
OUT=docs/results/smtnet-300w-v$RUN
E=runs/v${RUN}_eval/$MODEL
mkdir -p $E
$S export --weights runs/soup$RUN/${MODEL}_a$ALPHA.safetensors --out $E/smtnet-300w-$MODEL.safetensors --half \
  --name smtnet-300w-$MODEL \
  --licence "300-W (iBUG, Imperial College London) and the Surrey Face Model (University of Surrey): non-commercial research only"
for b in gt detector; do
  $S evaluate --weights $E/smtnet-300w-$MODEL.safetensors --data $D/helen/testset $D/lfpw/testset \
    --out $E/common_$b --boxes $b --no-progress
done
$S evaluate --weights $E/smtnet-300w-$MODEL.safetensors --data $D/helen/testset $D/lfpw/testset \
  --out $E/common_flip --boxes gt --flip-test --no-progress
cp $E/common_gt/report.json $OUT/eval_common_gt_${MODEL}_fp16.json
cp $E/common_detector/report.json $OUT/eval_common_yunet_${MODEL}_fp16.json
cp $E/common_flip/report.json $OUT/eval_common_flip_${MODEL}_fp16.json
cp $E/common_gt/ced.png $OUT/ced_common_gt_$MODEL.png
