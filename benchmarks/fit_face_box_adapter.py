"""Fit the BoxAdapter that maps Haar cascade boxes to tight 68-landmark boxes.

Why: the landmark model is trained on crops built from landmark boxes; a detector's own boxes
sit elsewhere (the frontal Haar square covers brows to upper lip, not the chin). This script
runs the bundled Haar detector with the identity adapter on the 300-W *training* folders only
(never the common test set), matches each annotated face to one detection, fits the adapter
and writes ``facelandmarks_smt/data/haar_adapter.json`` (copy the printed numbers into
``DEFAULT_HAAR_ADAPTER`` in ``facelandmarks_smt/face_detection.py``).

Matching (one annotated face per crop): pass 1 takes the detection with the highest raw IoU
with the landmark box if IoU >= 0.3 and fits a first adapter; pass 2 re-matches with the
*adapted* boxes at IoU >= 0.5 and refits on those pairs. Detection rate = share of annotated
faces with an adapted detection at IoU >= 0.5. A seeded 80/20 split of the same faces gives a
held-out check of the fit.

Usage::

    .venv/bin/python benchmarks/fit_face_box_adapter.py            # all 2,012 training faces
    .venv/bin/python benchmarks/fit_face_box_adapter.py --limit 300 --dry-run
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

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facelandmarks_smt.face_detection import (  # noqa: E402
    HAAR_ADAPTER_PATH,
    HAAR_CASCADE_PATH,
    BoxAdapter,
    HaarFaceDetector,
    box_iou,
)

try:
    from tqdm import tqdm
except ImportError:  # progress bars are optional
    def tqdm(it, **_kw):
        return it

DEFAULT_ROOT = os.environ.get("FACELANDMARKS_DATA", "/work/shared/data/landmarks68")
TRAIN_FOLDERS = ["300w/afw", "300w/helen/trainset", "300w/lfpw/trainset"]
PASS1_IOU = 0.3
PASS2_IOU = 0.5


def read_pts(path: Path) -> np.ndarray:
    """300-W ``.pts`` -> (L, 2) float32, converted from 1-based to 0-based pixel centres."""
    lines = path.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "{") + 1
    end = next(i for i, ln in enumerate(lines) if ln.strip() == "}")
    pts = np.array([[float(v) for v in ln.split()] for ln in lines[start:end]], np.float32)
    return pts - 1.0


def landmark_box(pts: np.ndarray) -> np.ndarray:
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def match(det_boxes: np.ndarray, gt_box: np.ndarray, thr: float):
    """Index and IoU of the best detection for this face, or (-1, best IoU) below ``thr``."""
    if len(det_boxes) == 0:
        return -1, 0.0
    iou = box_iou(det_boxes, gt_box[None])[:, 0]
    k = int(np.argmax(iou))
    return (k if iou[k] >= thr else -1), float(iou[k])


def fit_two_pass(raws, gts, method="median"):
    """Pass 1 (raw IoU >= 0.3) -> adapter; pass 2 (adapted IoU >= 0.5) -> refit."""
    pairs = [(r[k], g) for r, g in zip(raws, gts) for k in [match(r, g, PASS1_IOU)[0]] if k >= 0]
    if not pairs:
        raise RuntimeError("no detection matched any face; check the data path")
    ad1 = BoxAdapter.fit(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), method)
    pairs2 = []
    for r, g in zip(raws, gts):
        if len(r):
            k, _ = match(ad1.apply(r), g, PASS2_IOU)
            if k >= 0:
                pairs2.append((r[k], g))
    ad2 = BoxAdapter.fit(np.array([p[0] for p in pairs2]), np.array([p[1] for p in pairs2]), method)
    return ad2, len(pairs), len(pairs2)


def evaluate(adapter: BoxAdapter, raws, gts):
    """Detection rate at adapted IoU >= 0.5 and raw-vs-adapted IoU on the matched faces."""
    ious_raw, ious_ad, hit, raw_hit, extra = [], [], 0, 0, 0
    for r, g in zip(raws, gts):
        if len(r) == 0:
            continue
        k, iou_ad = match(adapter.apply(r), g, PASS2_IOU)
        if match(r, g, PASS2_IOU)[0] >= 0:
            raw_hit += 1
        if k >= 0:
            hit += 1
            ious_ad.append(iou_ad)
            ious_raw.append(float(box_iou(r[k][None], g[None])[0, 0]))
            extra += len(r) - 1
    n = len(gts)
    return {
        "n_faces": n,
        "n_detected": hit,
        "detection_rate": hit / max(n, 1),
        "detection_rate_raw_boxes": raw_hit / max(n, 1),
        "mean_iou_raw": float(np.mean(ious_raw)) if ious_raw else 0.0,
        "mean_iou_adapted": float(np.mean(ious_ad)) if ious_ad else 0.0,
        "median_iou_adapted": float(np.median(ious_ad)) if ious_ad else 0.0,
        "extra_detections_per_detected_crop": extra / max(hit, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=DEFAULT_ROOT)
    ap.add_argument("--folders", nargs="+", default=TRAIN_FOLDERS)
    ap.add_argument("--limit", type=int, default=0, help="use every k-th face so about N remain")
    ap.add_argument("--min-size-frac", type=float, default=0.25,
                    help="min face size as a share of the crop's shorter side (speed: the "
                         "annotated face fills about half of each crop)")
    ap.add_argument("--method", choices=["median", "lstsq"], default="median")
    ap.add_argument("--backend", default="auto", choices=["auto", "opencv", "numpy"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HAAR_ADAPTER_PATH))
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the JSON")
    args = ap.parse_args(argv)

    for f in args.folders:
        if "testset" in f or "ibug" in f.lower():
            ap.error(f"{f}: test folders must never be used to fit the adapter")
    root = Path(args.data_root)
    items = []
    for f in args.folders:
        pts_files = sorted((root / f).glob("*.pts"))
        if not pts_files:
            ap.error(f"no .pts files in {root / f}")
        items += [(f, p) for p in pts_files]
    if args.limit and args.limit < len(items):
        step = len(items) / args.limit
        items = [items[int(i * step)] for i in range(args.limit)]

    det = HaarFaceDetector(adapter=BoxAdapter(), backend=args.backend)
    print(f"detector: {det!r}")
    raws, gts, folders = [], [], []
    t0 = time.time()
    for folder, pts_path in tqdm(items, desc="haar", unit="img"):
        img_path = pts_path.with_suffix(".jpg")
        bgr = cv2.imread(str(img_path))
        if bgr is None:
            print(f"skip unreadable {img_path}", file=sys.stderr)
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        det.min_size = max(32, int(args.min_size_frac * min(rgb.shape[:2])))
        raws.append(det.detect_raw(rgb).boxes.astype(np.float64))
        gts.append(landmark_box(read_pts(pts_path)).astype(np.float64))
        folders.append(folder)
    elapsed = time.time() - t0
    print(f"{len(gts)} faces in {elapsed:.0f} s ({elapsed / max(len(gts), 1) * 1000:.0f} ms/img)")

    adapter, n1, n2 = fit_two_pass(raws, gts, args.method)
    # 4 decimals (0.01 px on a 100 px face) so the JSON and the module constants agree exactly
    adapter = BoxAdapter(**{k: round(v, 4) for k, v in adapter.to_dict().items()})
    other = fit_two_pass(raws, gts, "lstsq" if args.method == "median" else "median")[0]
    metrics = evaluate(adapter, raws, gts)
    per_folder = {
        f: evaluate(adapter, [r for r, ff in zip(raws, folders) if ff == f],
                    [g for g, ff in zip(gts, folders) if ff == f])["detection_rate"]
        for f in args.folders
    }
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(gts))
    n_tr = int(0.8 * len(gts))
    tr, te = perm[:n_tr], perm[n_tr:]
    ad_tr = fit_two_pass([raws[i] for i in tr], [gts[i] for i in tr], args.method)[0]
    held = evaluate(ad_tr, [raws[i] for i in te], [gts[i] for i in te])

    print(f"pass 1 pairs (raw IoU >= {PASS1_IOU}): {n1}; pass 2 pairs (adapted IoU >= {PASS2_IOU}): {n2}")
    print(f"adapter ({args.method}): {adapter}")
    print(f"other method for comparison: {other}")
    print("metrics (all faces):", json.dumps(metrics, indent=1))
    print("detection rate per folder:", json.dumps(per_folder, indent=1))
    print(f"held-out 20% (adapter fitted on the other 80%: {ad_tr}):", json.dumps(held, indent=1))

    out = {
        "detector": "haar",
        "cascade": HAAR_CASCADE_PATH.name,
        "cascade_sha256": hashlib.sha256(HAAR_CASCADE_PATH.read_bytes()).hexdigest(),
        "adapter": adapter.to_dict(),
        "raw_box_convention": "cascade rect (x, y, w, h) -> (x-0.5, y-0.5, x+w-0.5, y+h-0.5) "
                              "in 0-based pixel-centre coordinates",
        "fit": {
            "date": _dt.date.today().isoformat(),
            "script": "benchmarks/fit_face_box_adapter.py",
            "data": [f"landmarks68/{f}" for f in args.folders],
            "data_note": "300-W training folders only (AFW, HELEN trainset, LFPW trainset); "
                         "crops of one annotated face each",
            "limit": args.limit or None,
            "n_faces": len(gts),
            "n_pairs_fitted": n2,
            "method": args.method,
            "matching": f"pass 1: best raw IoU >= {PASS1_IOU}; pass 2: best adapted IoU >= "
                        f"{PASS2_IOU}, refit",
            "detector_params": {
                "backend": det.backend,
                "scale_factor": det.scale_factor,
                "min_neighbors": det.min_neighbors,
                "min_size": f"max(32, {args.min_size_frac} * shorter crop side)",
                "max_side": det.max_side,
            },
            "metrics": metrics,
            "detection_rate_per_folder": per_folder,
            "heldout_20pct": {"adapter": ad_tr.to_dict(), **held},
            "other_method": {"lstsq" if args.method == "median" else "median": other.to_dict()},
        },
    }
    if args.dry_run:
        print("dry run: not writing", args.out)
    else:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        print("wrote", args.out)
    a = adapter
    print(
        "\nDEFAULT_HAAR_ADAPTER = BoxAdapter(\n"
        f"    scale_x={a.scale_x:.4f}, scale_y={a.scale_y:.4f}, "
        f"offset_x={a.offset_x:.4f}, offset_y={a.offset_y:.4f},\n)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
