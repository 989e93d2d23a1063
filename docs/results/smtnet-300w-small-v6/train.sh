#!/usr/bin/env bash
# #17, seventh CPU run: can a short low-lr phase bring smtnet-300w-small-wild back under the 300-W
# gate (common set <= 3.40) while it keeps its gain on turned faces? Two runs from the wild weights,
# equal budget, one thread each, both at once, seed 0:
#   real: the 1,811 300-W training faces only (the "final phase on real faces" idea)
#   mix1: the same faces + the first turned view of each (|yaw| <= 80, about 1:1)
# Same validation as the wild run (201 held-out faces, their turned views, one degraded copy each),
# validated every 80 steps. Selection with a bar on the real faces: a validation counts only when the
# held-out real faces score <= 3.62 (v5's 3.589 + 0.03; v5 and wild put common-set NME at about
# 0.54 x this number + 1.43, so 3.62 is where the 3.40 gate sits), and then the lowest NME over all
# parts wins. The gate itself is checked once, on the chosen weights (evaluate.sh).
set -e
mkdir -p runs
git show 6f78986:weights/smtnet-300w-small-wild.safetensors > runs/small_wild.safetensors
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
D=/work/shared/data/landmarks68/300w
L=docs/results/smtnet-300w-small-v5/data_lists.json   # the same seed-0 split as v5
M=${MINUTES:-90}
S="python -m facelandmarks_smt.training"
E=${EOS_MODEL:-/work/shared/models/eos_sfm}
# 1. data (resumable; skip when present). --views 1 --seed 0 draws exactly view 0 of the wild run's 4-view set.
$S synthesize-poses --data $D/afw $D/helen/trainset $D/lfpw/trainset --eos-model $E --max-yaw 90 --seed 1 \
   --out runs/synth/val --views 3 --only $L:val --no-progress
$S degrade --data $D/afw $D/helen/trainset $D/lfpw/trainset --out runs/degraded_val1 --per-face 1 --only $L:val \
   --seed 0 --no-progress
for k in 0 1; do
  $S synthesize-poses --data $D/afw $D/helen/trainset $D/lfpw/trainset --eos-model $E --max-yaw 90 --seed 0 \
     --out runs/synth/train1 --views 1 --only $L:train --no-progress --shard $k/2 &
done
wait
# views turned past 80 degrees are dropped (see the wild run); links, so nothing is copied
python - <<'PY'
import glob, json, os
def link(src, dst):
    os.makedirs(dst, exist_ok=True)
    n = 0
    for f in glob.glob(f"{src}/synthesis*.jsonl"):
        for line in open(f):
            r = json.loads(line)
            for v in r.get("views", []):
                if abs(r["yaw_pitch_roll"][0] + v["yaw"]) <= 80:
                    for ext in (".jpg", ".pts"):
                        name = v["file"][:-4] + ext
                        if not os.path.lexists(f"{dst}/{name}"):
                            os.symlink(os.path.abspath(f"{src}/{name}"), f"{dst}/{name}")
                    n += 1
    print(dst, n, "views")
link("runs/synth/train1", "runs/synth/train1_80")
link("runs/synth/val", "runs/synth/val_80")
PY
# 2. the two runs
COMMON="--config small --init runs/small_wild.safetensors --cache runs/cache --max-minutes $M --threads 1 --no-progress \
  --extra-val-data runs/synth/val_80 runs/degraded_val1 \
  --set optimizer=adamw weight_decay=0 lr=0.0002 warmup_steps=20 sigma_mode=fixed sigmas=[2] \
        epochs=1000 lr_milestones=[] lr_milestone_fractions=[0.5,0.8] lr_gamma=0.3 ema_decay=0.99 \
        val_every_steps=80 select_max_nme={\"real\":3.62} \
        augment.scale=0.1 augment.occlusion_prob=0.25 augment.motion_blur_prob=0.1 augment.color_prob=0.4 \
        augment.grey_prob=0.1 augment.jpeg_prob=0.2 augment.defocus_prob=0.15 augment.lowres_prob=0.1 \
        augment.noise_prob=0.1 augment.dark_prob=0.1 augment.object_occlusion_prob=0.2"
$S train --data $D/afw $D/helen/trainset $D/lfpw/trainset --out runs/v7_real $COMMON > runs/v7_real.out 2>&1 &
sleep 30
$S train --data $D/afw $D/helen/trainset $D/lfpw/trainset --extra-data runs/synth/train1_80 \
  --out runs/v7_mix1 $COMMON > runs/v7_mix1.out 2>&1 &
wait
