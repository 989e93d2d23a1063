"""Inference speed per face on this machine: each model config, batch 1 and batch 8, and the
bundled face detector; dlib's 68-point predictor beside it when dlib is installed.

    python benchmarks/inference_speed.py [--configs tiny small paper] [--repeats 10] [--json out.json]

Times are medians of ``--repeats`` calls after 2 warm-up calls, on the committed astronaut photo
(512x512), through the public API (`Detector.predict_crops` for the network, `Detector.detect`
with a given box for crop + network + decode). Ratios are against dlib measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from facelandmarks_smt import Detector
from facelandmarks_smt.face_detection import get_face_detector
from facelandmarks_smt.images import load_image

from machine import cpu_name  # benchmarks/machine.py (scripts run from this folder)

REPO = Path(__file__).resolve().parent.parent
BOX = [178.0, 85.0, 260.0, 180.0]  # the astronaut's landmark box, roughly


def median_ms(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "small", "paper"])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json")
    args = p.parse_args()
    image = load_image(REPO / "examples" / "astronaut.jpg")
    rows = []
    dlib_ms = None
    try:
        from facelandmarks_smt.training.evaluate import DlibBaseline

        dl = DlibBaseline()
        dlib_ms = median_ms(lambda: dl.detect(image, boxes=np.array([BOX])), args.repeats)
        rows.append({"what": "dlib 68-point predictor (given box)", "ms_per_face": round(dlib_ms, 2)})
    except ImportError:
        pass
    fd = get_face_detector("haar")
    rows.append({"what": f"bundled Haar face detector ({image.shape[1]}x{image.shape[0]} image)",
                 "ms_per_face": round(median_ms(lambda: fd.detect(image), max(3, args.repeats // 3)), 2)})
    for name in args.configs:
        det = Detector.from_config(name, device="cpu", batch_size=8)
        crops, _ = det.crop(image, [BOX])
        crops8 = np.repeat(crops, 8, axis=0)
        rows.append({"what": f"{name}: network, batch 1", "ms_per_face":
                     round(median_ms(lambda: det.predict_crops(crops), args.repeats), 2)})
        rows.append({"what": f"{name}: network, batch 8", "ms_per_face":
                     round(median_ms(lambda: det.predict_crops(crops8), args.repeats) / 8, 2)})
        rows.append({"what": f"{name}: detect() with a box (crop + network + decode)", "ms_per_face":
                     round(median_ms(lambda: det.detect(image, boxes=[BOX]), args.repeats), 2)})
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, fp32\n")
    print(f"{'what':58} {'ms/face':>9} {'vs dlib':>8}")
    for r in rows:
        ratio = f"{r['ms_per_face'] / dlib_ms:7.1f}x" if dlib_ms else "      -"
        print(f"{r['what']:58} {r['ms_per_face']:9.2f} {ratio}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": cpu_name(), "threads": torch.get_num_threads(),
                                               "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
