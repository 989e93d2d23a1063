#!/usr/bin/env bash
# #16: NNCF int8 for OpenVINO of the shipped tiny v6 without the slow accuracy control (its ranking of 263
# ops did not finish in 85 min last session): a handful of plain quantisations, each checked on the same
# 3,663 validation faces (the held-out part of train's split + the 3,462 YouTube-Faces frames, never used
# to train a shipped model). Selection on these faces only; the 300-W common set is looked at once, for
# the chosen variant (<= +0.05 over fp32 to ship).
#   plain       NNCF's performance preset, fast bias correction
#   heads       + the last stack's heads (heatmap conv, the coordinate head's two layers) in fp32
#   heads_stem  + the stem's first convolution in fp32 (it sees the raw image)
#   mixed       asymmetric activations (NNCF's mixed preset), heads in fp32
#   full_bc     heads in fp32, full bias correction
set -e
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
D=/work/shared/data/landmarks68
O=runs/nncf_tiny_v6
mkdir -p $O
HEADS="/model/heatmap_heads.1/Conv/WithoutBiases /model/coord_heads.1/fc1/Gemm/WithoutBiases /model/coord_heads.1/fc2/Gemm/WithoutBiases"
STEM="/model/stem/conv/Conv/WithoutBiases"
q() {  # name, extra args
  name=$1; shift
  [ -f $O/$name.json ] && return 0
  python -m facelandmarks_smt.training quantize-openvino --weights weights/smtnet-300w-tiny.safetensors \
    --data $D/300w/afw $D/300w/helen/trainset $D/300w/lfpw/trainset --extra-val-data $D/ytf/train \
    --max-drop 1.0 --out $O/$name "$@" > $O/$name.log 2>&1
}
q plain
q heads --keep-fp32 $HEADS
q heads_stem --keep-fp32 $HEADS $STEM
q mixed --keep-fp32 $HEADS --preset mixed
q full_bc --keep-fp32 $HEADS --bias-correction full
# second round, after the first's numbers (plain +0.045, heads +0.042, heads_stem +0.044, mixed +0.035,
# full_bc +0.042): the mixed preset with four times the calibration crops, and the shipped QDQ int8 graph
# run by OpenVINO on the same faces
q mixed_cal1024 --keep-fp32 $HEADS --preset mixed --num-calibration 1024
[ -f $O/qdq.json ] || python docs/results/openvino_int8_qdq_on_val_tiny_v6.py $O/qdq.json
# third round (mixed_cal1024 +0.027, the QDQ graph +0.001): every training face as a calibration crop
q mixed_cal1811 --keep-fp32 $HEADS --preset mixed --num-calibration 1811
python - <<'PY'
import glob, json
for f in sorted(glob.glob("runs/nncf_tiny_v6/*.json")):
    if f.endswith("qdq.json"):
        print("qdq (shipped)", json.load(open(f))["nme_int8_qdq"])
        continue
    v = json.load(open(f))["validation"]
    print(f"{f.split('/')[-1][:-5]:12s} fp32 {v['nme_fp32']:.4f} int8 {v['nme_int8']:.4f} ({v['nme_int8'] - v['nme_fp32']:+.4f})")
PY
