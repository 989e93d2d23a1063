"""NME of the shipped landmark model with ground-truth boxes vs YuNet boxes, upright or rotated.

Why: the bundled face detector decides what the landmark model sees; this measures, on the
300-W common set (reporting only, never fitting), what YuNet boxes cost against ground-truth
boxes, whether the eye-keypoint rotation correction helps, and how all of them do on the same
images rotated by +-30 degrees (image and ground truth rotated together, canvas enlarged so
nothing is cut off). Also YuNet's recall (a face counts as found when a detection's box centre
lies within 0.5 * sqrt(w*h) of its landmark box centre) and its time per image.

    python benchmarks/face_detection_eval.py --out docs/results/face_detection/nme_common.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facelandmarks_smt import Detector  # noqa: E402
from facelandmarks_smt.face_detection import YuNetFaceDetector  # noqa: E402
from facelandmarks_smt.training.datasets import three_hundred_w  # noqa: E402
from facelandmarks_smt.training.evaluate import evaluate_detector  # noqa: E402

ROOT = os.environ.get("FACELANDMARKS_DATA", "/work/shared/data/landmarks68")


def rotate(image: np.ndarray, points: np.ndarray, angle: float):
    """Rotate ``image`` by ``angle`` degrees counter-clockwise on screen about its centre on an
    enlarged canvas, and the (L, 2) pixel-centre ``points`` with it."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(w * c + h * s)), int(np.ceil(w * s + h * c))
    m[:, 2] += [(nw - w) / 2, (nh - h) / 2]
    out = cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, (points @ m[:, :2].T + m[:, 2]).astype(np.float32)


class Rotated:
    """The dataset with every image and its landmarks rotated by ``angle`` degrees."""

    def __init__(self, ds, angle: float):
        self.ds, self.angle = ds, angle

    def __len__(self):
        return len(self.ds)

    def __iter__(self):
        for i in range(len(self.ds)):
            image, lm, meta = self.ds[i]
            if self.angle:
                image, lm = rotate(image, lm, self.angle)
            yield image, lm, meta


def time_detector(fd: YuNetFaceDetector, ds) -> dict:
    ms = []
    for i in range(len(ds)):
        image = ds[i][0]
        t = time.perf_counter()
        fd.detect(image)
        ms.append(1000 * (time.perf_counter() - t))
    ms = np.array(ms)
    sizes = np.array([ds.load_image(i).shape[:2] for i in range(min(len(ds), 50))])
    return {"ms_per_image_median": float(np.median(ms)), "ms_per_image_p10": float(np.percentile(ms, 10)),
            "ms_per_image_p90": float(np.percentile(ms, 90)), "ms_per_image_mean": float(ms.mean()),
            "images": len(ms), "image_side_range_first50": [int(sizes.min()), int(sizes.max())]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(REPO / "facelandmarks_smt/weights/smtnet-300w-small.safetensors"))
    ap.add_argument("--data-root", default=ROOT)
    ap.add_argument("--angles", type=float, nargs="*", default=[0.0, 30.0, -30.0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--every", type=int, default=1, help="use every k-th face (a fixed subset, for a busy CPU)")
    ap.add_argument("--out", default=str(REPO / "docs/results/face_detection/nme_common.json"))
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out, do the rest")
    ap.add_argument("--only", nargs="*", default=None, choices=["gt_boxes", "yunet", "yunet_rotation_corrected"],
                    help="run only these box sources (several processes can share the work)")
    ap.add_argument("--no-timing", action="store_true", help="skip the YuNet timing pass")
    args = ap.parse_args(argv)

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    common = three_hundred_w(args.data_root, "common")
    if args.limit:
        common = common.subset(range(args.limit))
    if args.every > 1:
        common = common.subset(range(0, len(common), args.every))
    fp32 = {"backend": "torch", "precision": "fp32"}  # not "auto": the same numbers on any CPU
    upright = Detector(args.weights, device="cpu", correct_rotation=True, **fp32)
    axis = Detector(upright.model, device="cpu", correct_rotation=False, **fp32)
    axis.metadata = upright.metadata
    results = {
        "what": "SMT-Net small (shipped fp16 weights), 300-W common set (HELEN test + LFPW test), "
                "inter-ocular NME in percent; YuNet min_face_score default; misses excluded from "
                "NME and counted as failures in fr8_with_misses",
        "weights": Path(args.weights).name,
        "faces": len(common),
        "machine": f"{platform.processor() or platform.machine()}, torch threads "
                   f"{torch.get_num_threads()}, other processes running (times are upper bounds)",
        "runs": {},
    }
    if args.resume and Path(args.out).is_file():
        old = json.loads(Path(args.out).read_text())
        results["runs"], results["yunet_timing"] = old["runs"], old["yunet_timing"]
    elif not args.no_timing:
        results["yunet_timing"] = time_detector(axis.face_detector, common)
    print(json.dumps(results.get("yunet_timing")))
    for angle in args.angles:
        for name, det, boxes in (("gt_boxes", axis, "gt"), ("yunet", axis, "detector"),
                                 ("yunet_rotation_corrected", upright, "detector")):
            key = f"rot{angle:+g}/{name}"
            if key in results["runs"] or (args.only and name not in args.only):
                continue
            t = time.time()
            rep = evaluate_detector(det, Rotated(common, angle), boxes=boxes, progress=False,
                                    title=f"{name} rot {angle:+g}")
            m = rep["metrics"]
            results["runs"][key] = {"image_rotation_deg": angle, "boxes": name,
                                    "subset": f"every {args.every}. face" if args.every > 1 else "all",
                                    "faces_total": rep["faces_total"],
                                    "found": rep["faces_total"] - rep["misses"], **m}
            print(key, f"found {rep['faces_total'] - rep['misses']}/{rep['faces_total']}",
                  f"NME {m['nme']:.3f} FR8 {m['fr8']:.2f} AUC8 {m['auc8']:.2f}",
                  f"({time.time() - t:.0f} s)", flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
