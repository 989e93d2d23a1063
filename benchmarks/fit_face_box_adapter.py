"""Fit the BoxAdapters that map YuNet boxes to tight 68-landmark boxes.

Why: the landmark model is trained on crops built from landmark boxes; YuNet's WIDER FACE boxes
sit elsewhere (they include the forehead). This script runs the bundled YuNet with identity
adapters on the 300-W *training* folders only, matches each annotated face to one detection and
fits two adapters:

- ``axis``: YuNet box -> the image-axis landmark box (crops without rotation);
- ``upright``: YuNet box -> the landmark box in the face's upright frame, the frame given by
  YuNet's eye keypoints (crops with rotation correction, ``upright=True``);
- ``roll_gain``: YuNet's eye keypoints lean towards level, so the eye-line angle under-states a
  tilt. Each training image is also rotated by a seeded random angle in +-35 deg; the gain is the
  least-squares factor from the change of the eye-line angle to the true rotation.

It writes ``facelandmarks_smt/data/yunet_adapter.json``. With ``--report-common`` it then runs
YuNet on the 300-W common set (never used for the fit) and reports the mean IoU with the landmark
box before (raw YuNet box) and after adaptation, plus recall.

Matching (one annotated face per crop): pass 1 takes the detection with the highest raw IoU with
the landmark box if IoU >= 0.3 and fits a first adapter; pass 2 re-matches with the *adapted*
boxes at IoU >= 0.5 and refits on those pairs. Upright IoU is measured in the face's upright
frame.

Usage::

    python benchmarks/fit_face_box_adapter.py --report-common
    python benchmarks/fit_face_box_adapter.py --limit 300 --dry-run
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from facelandmarks_smt.face_detection import (  # noqa: E402
    YUNET_ADAPTER_PATH,
    YUNET_MODEL_PATH,
    BoxAdapter,
    YuNetFaceDetector,
    box_iou,
    roll_angles,
    upright_landmark_box,
)
from facelandmarks_smt.preprocess import landmark_box  # noqa: E402
from facelandmarks_smt.training.datasets import three_hundred_w  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # progress bars are optional
    def tqdm(it, **_kw):
        return it

DEFAULT_ROOT = os.environ.get("FACELANDMARKS_DATA", "/work/shared/data/landmarks68")
PASS1_IOU = 0.3
PASS2_IOU = 0.5
SCORE_FLOOR = 0.3  # collect everything above this so the score threshold can be studied


def to_frame(boxes: np.ndarray, angles) -> np.ndarray:
    """Centred (x1, y1, x2, y2) boxes whose size is in a frame rotated by ``angles`` -> boxes in
    that frame's coordinates, so IoU between two boxes of the same face is the upright IoU."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    a = np.radians(np.broadcast_to(np.asarray(angles, np.float64), (len(b),)))
    c = 0.5 * (b[:, :2] + b[:, 2:])
    half = 0.5 * (b[:, 2:] - b[:, :2])
    cu = c[:, 0] * np.cos(a) + c[:, 1] * np.sin(a)
    cv = -c[:, 0] * np.sin(a) + c[:, 1] * np.cos(a)
    cc = np.stack([cu, cv], 1)
    return np.concatenate([cc - half, cc + half], 1)


def collect(det: YuNetFaceDetector, dataset, desc: str):
    """Raw YuNet detections (boxes, scores, keypoints) and the landmarks of each face."""
    recs = []
    for i in tqdm(range(len(dataset)), desc=desc, unit="img"):
        image, lm, meta = dataset[i]
        raw = det.detect_raw(image)
        recs.append({"boxes": raw.boxes.astype(np.float64), "scores": raw.scores,
                     "kps": raw.keypoints.astype(np.float64), "lm": lm.astype(np.float64),
                     "name": meta["name"]})
    return recs


def match(boxes: np.ndarray, target: np.ndarray, thr: float):
    """Index and IoU of the best box for this face, or (-1, best IoU) below ``thr``."""
    if len(boxes) == 0:
        return -1, 0.0
    iou = box_iou(boxes, target[None])[:, 0]
    k = int(np.argmax(iou))
    return (k if iou[k] >= thr else -1), float(iou[k])


def fit_roll_gain(det: YuNetFaceDetector, dataset, seed: int = 0, max_angle: float = 35.0):
    """Least-squares gain from the change of YuNet's eye-line angle to a known image rotation."""
    from face_detection_eval import rotate

    rng = np.random.default_rng(seed)
    true, est = [], []
    for i in tqdm(range(len(dataset)), desc="yunet rotated train", unit="img"):
        image, lm, _ = dataset[i]
        angle = float(rng.uniform(-max_angle, max_angle))
        rolls = []
        for img, pts in ((image, lm), rotate(image, lm, angle)):
            raw = det.detect_raw(img)
            if len(raw.boxes) == 0:
                break
            c = 0.5 * (raw.boxes[:, :2] + raw.boxes[:, 2:])
            k = int(np.argmin(np.linalg.norm(c - pts.mean(0), axis=1)))
            rolls.append(roll_angles(raw.keypoints[k:k + 1])[0])
        if len(rolls) == 2:
            true.append(-angle)  # counter-clockwise on screen is a negative roll
            est.append(rolls[1] - rolls[0])
    true, est = np.array(true), np.array(est)
    gain = float(np.sum(true * est) / np.sum(est * est))
    return gain, {"pairs": len(true), "gain": gain,
                  "median_abs_roll_error_deg_raw": float(np.median(np.abs(est - true))),
                  "median_abs_roll_error_deg_with_gain": float(np.median(np.abs(gain * est - true)))}


def pairs_for(recs, adapter, upright: bool, thr: float, gain: float = 1.0):
    """(raw box, target box, angle, raw IoU, adapted IoU, score, n detections) of matched faces.

    ``adapter=None`` matches on raw boxes. Targets: the axis landmark box, or with ``upright`` the
    landmark box in the frame of the matched detection's eye line.
    """
    out = []
    for r in recs:
        if len(r["boxes"]) == 0:
            continue
        ang = gain * roll_angles(r["kps"]) if upright else np.zeros(len(r["boxes"]))
        best = None
        for k in range(len(r["boxes"])):
            tgt = upright_landmark_box(r["lm"], ang[k]) if upright else landmark_box(r["lm"])
            ad = adapter.apply(r["boxes"][k], ang[k] if upright else None) if adapter else r["boxes"][k]
            iou_ad = float(box_iou(to_frame(ad, ang[k]), to_frame(tgt, ang[k]))[0, 0])
            if best is None or iou_ad > best[4]:
                iou_raw = float(box_iou(to_frame(r["boxes"][k], ang[k]), to_frame(tgt, ang[k]))[0, 0])
                best = (r["boxes"][k], tgt, ang[k], iou_raw, iou_ad, float(r["scores"][k]), len(r["boxes"]))
        if best is not None and best[4] >= thr:
            out.append(best)
    return out


def fit_two_pass(recs, upright: bool, method="median", gain: float = 1.0):
    p1 = pairs_for(recs, None, upright, PASS1_IOU, gain)
    if not p1:
        raise RuntimeError("no detection matched any face; check the data path")
    fit = lambda ps: BoxAdapter.fit(np.array([p[0] for p in ps]), np.array([p[1] for p in ps]),  # noqa: E731
                                    method, angles=np.array([p[2] for p in ps]) if upright else None)
    ad1 = fit(p1)
    p2 = pairs_for(recs, ad1, upright, PASS2_IOU, gain)
    return fit(p2), len(p1), len(p2)


def evaluate(adapter: BoxAdapter, recs, upright: bool, min_score: float = 0.0, gain: float = 1.0) -> dict:
    """Recall at adapted IoU >= 0.5 and mean raw/adapted IoU with the landmark box."""
    kept = [{**r, "boxes": r["boxes"][r["scores"] >= min_score], "kps": r["kps"][r["scores"] >= min_score],
             "scores": r["scores"][r["scores"] >= min_score]} for r in recs]
    ps = pairs_for(kept, adapter, upright, PASS2_IOU, gain)
    n = len(recs)
    return {
        "n_faces": n,
        "n_matched": len(ps),
        "recall_iou50": len(ps) / max(n, 1),
        "mean_iou_raw": float(np.mean([p[3] for p in ps])) if ps else 0.0,
        "mean_iou_adapted": float(np.mean([p[4] for p in ps])) if ps else 0.0,
        "median_iou_adapted": float(np.median([p[4] for p in ps])) if ps else 0.0,
        "extra_detections_per_image": float(np.mean([len(r["boxes"]) for r in kept]) - len(ps) / max(n, 1)),
    }


def score_study(recs, adapter) -> dict:
    """Matched-face scores and unmatched detections at several score thresholds."""
    ps = pairs_for(recs, adapter, False, PASS2_IOU)
    s = np.array([p[5] for p in ps])
    all_scores = np.concatenate([r["scores"] for r in recs])
    out = {"matched_score_percentiles": {q: float(np.percentile(s, q)) for q in (0, 1, 5, 50)}}
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        out[f"min_score_{t}"] = {"matched_faces_kept": int((s >= t).sum()),
                                 "other_detections": int((all_scores >= t).sum() - (s >= t).sum())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=DEFAULT_ROOT)
    ap.add_argument("--limit", type=int, default=0, help="use every k-th face so about N remain")
    ap.add_argument("--method", choices=["median", "lstsq"], default="median")
    ap.add_argument("--report-common", action="store_true",
                    help="after fitting, report IoU/recall on the 300-W common set (not used for the fit)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random rotations for the roll gain")
    ap.add_argument("--out", default=str(YUNET_ADAPTER_PATH))
    ap.add_argument("--report-out", default=str(REPO / "docs/results/face_detection/box_adapter.json"))
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the JSON files")
    args = ap.parse_args(argv)

    train = three_hundred_w(args.data_root, "train")
    if args.limit and args.limit < len(train):
        step = len(train) / args.limit
        train = train.subset([int(i * step) for i in range(args.limit)])
    ident = {"axis": BoxAdapter(), "upright": BoxAdapter()}
    det = YuNetFaceDetector(score_threshold=SCORE_FLOOR, adapters=ident, roll_gain=1.0)
    t0 = time.time()
    recs = collect(det, train, "yunet train")
    print(f"{len(recs)} training faces in {time.time() - t0:.0f} s")

    gain, gain_info = fit_roll_gain(det, train, args.seed)
    gain = round(gain, 3)
    print("roll gain:", json.dumps(gain_info))
    fitted, summary = {}, {"roll_gain": gain_info}
    for kind in ("axis", "upright"):
        up = kind == "upright"
        ad, n1, n2 = fit_two_pass(recs, up, args.method, gain)
        ad = BoxAdapter(**{k: round(v, 4) for k, v in ad.to_dict().items()})
        fitted[kind] = ad
        summary[kind] = {"adapter": ad.to_dict(), "pairs_pass1": n1, "pairs_pass2": n2,
                         "train": evaluate(ad, recs, up, gain=gain)}
        print(kind, ad, json.dumps(summary[kind]["train"], indent=1))
    summary["train_score_study"] = score_study(recs, fitted["axis"])
    print("score study (train):", json.dumps(summary["train_score_study"], indent=1))

    out = {
        "detector": "yunet",
        "model": YUNET_MODEL_PATH.name,
        "model_sha256": hashlib.sha256(YUNET_MODEL_PATH.read_bytes()).hexdigest(),
        "adapters": {k: v.to_dict() for k, v in fitted.items()},
        "roll_gain": gain,
        "raw_box_convention": "FaceDetectorYN row (x, y, w, h) -> (x, y, x + w, y + h)",
        "upright_convention": "offsets along the face's eye line and down the face; angle from "
                              "the eye keypoints (roll_angles); target: upright_landmark_box",
        "fit": {
            "date": _dt.date.today().isoformat(),
            "script": "benchmarks/fit_face_box_adapter.py",
            "data": "300-W training folders only: afw, helen/trainset, lfpw/trainset",
            "n_faces": len(recs),
            "method": args.method,
            "matching": f"pass 1: best raw IoU >= {PASS1_IOU}; pass 2: best adapted IoU >= {PASS2_IOU}, refit",
            "yunet_score_floor": SCORE_FLOOR,
            "axis": summary["axis"],
            "upright": summary["upright"],
            "roll_gain": gain_info,
        },
    }
    report = {"train": summary}
    if args.report_common:
        common = three_hundred_w(args.data_root, "common")
        crecs = collect(det, common, "yunet common")
        report["common"] = {k: evaluate(fitted[k], crecs, k == "upright", 0.6, gain) for k in fitted}
        report["common"]["score_study"] = score_study(crecs, fitted["axis"])
        print("common set:", json.dumps(report["common"], indent=1))
    if args.dry_run:
        print("dry run: not writing", args.out)
    else:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        print("wrote", args.out)
        if args.report_common:
            Path(args.report_out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.report_out).write_text(json.dumps(report, indent=2) + "\n")
            print("wrote", args.report_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
