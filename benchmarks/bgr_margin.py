"""How well `images.bgr_score` separates RGB from BGR arrays, on 300-W training faces.

Why: `Detector.detect` warns when a numpy image looks BGR (skin bluer than red). This prints and
writes the score distribution of the true RGB images and of the same images channel-swapped, so
`images.BGR_MARGIN` is set from data (training folders only), and counts how often each side of
the margin is hit. Gray images score 0 and never warn.

    python benchmarks/bgr_margin.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facelandmarks_smt.images import BGR_MARGIN, bgr_score  # noqa: E402
from facelandmarks_smt.preprocess import landmark_box  # noqa: E402
from facelandmarks_smt.training.datasets import three_hundred_w  # noqa: E402

ROOT = os.environ.get("FACELANDMARKS_DATA", "/work/shared/data/landmarks68")


def main() -> int:
    ds = three_hundred_w(ROOT, "train")
    rgb, bgr = [], []
    for i in range(len(ds)):
        image, lm, _ = ds[i]
        box = landmark_box(lm)[None]
        rgb.append(bgr_score(image, box))
        bgr.append(bgr_score(np.ascontiguousarray(image[:, :, ::-1]), box))
    rgb, bgr = np.array(rgb), np.array(bgr)
    pct = [0, 1, 5, 50, 95, 99, 100]
    out = {
        "data": "300-W training folders (afw, helen/trainset, lfpw/trainset), ground-truth landmark boxes",
        "faces": len(rgb),
        "margin": BGR_MARGIN,
        "rgb_score_percentiles": dict(zip(map(str, pct), np.percentile(rgb, pct).round(2).tolist())),
        "bgr_score_percentiles": dict(zip(map(str, pct), np.percentile(bgr, pct).round(2).tolist())),
        "rgb_images_warned": int((rgb > BGR_MARGIN).sum()),
        "bgr_images_warned": int((bgr > BGR_MARGIN).sum()),
        "gray_images (score 0)": int((rgb == 0).sum()),
    }
    print(json.dumps(out, indent=1))
    dst = REPO / "docs/results/face_detection/bgr_margin.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
