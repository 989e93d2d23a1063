"""Which nodes int8 may quantise: validation-split NME of int8 graphs against torch fp32.

    python benchmarks/int8_variants.py [--weights W] [--data /path/to/landmarks68] [--json out.json]

Scored on the validation split of the 300-W training folders (val_fraction 0.1, seed 0: the faces
the trainer selects models on), never on the common test set, with ground-truth landmark boxes.
Variants: every Conv/Gemm quantised, and the library's recipe (heatmap and coordinate heads kept
fp32). Both: QDQ, int8 per-channel weights, uint8 activations, MinMax on 256 crops of the training
part. (Percentile calibration was tried too: onnxruntime's calibrator held every activation of the
256 crops and needed more than 21 GB, so it was not measured.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facelandmarks_smt import Detector, hub
from facelandmarks_smt.backends import OrtRunner
from facelandmarks_smt.export import export_onnx
from facelandmarks_smt.preprocess import invert_affine, transform_points
from facelandmarks_smt.quantize import QUANT_SETTINGS, calibration_crops, head_nodes, quantize_int8
from facelandmarks_smt.training.datasets import load_datasets, split_dataset
from facelandmarks_smt.training.metrics import landmark_boxes, normalised_errors
from facelandmarks_smt.weights_io import sha256_file

from machine import cpu_name
from precision_nme import DEFAULT_DATA

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="smtnet-300w-small")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=str(REPO / "docs" / "results" / "int8_variants.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path, _ = hub.resolve(args.weights)
    det = Detector(path, device="cpu", backend="torch", precision="fp32", threads=args.threads)  # the fp32 reference
    cfg = det.config
    root = Path(args.data) / "300w" if (Path(args.data) / "300w").is_dir() else Path(args.data)
    folders = [root / "afw", root / "helen" / "trainset", root / "lfpw" / "trainset"]  # the trainer's order
    train, val = split_dataset(load_datasets([str(f) for f in folders]), 0.1, seed=0)
    crops, mats, gts = [], [], []
    for i in range(len(val)):
        image, landmarks, _ = val[i]
        gt = np.asarray(landmarks, np.float32)
        c, m = det.crop(image, landmark_boxes(gt)[:1])
        crops.append(c[0]), mats.append(m[0]), gts.append(gt)
    crops, mats, gts = np.stack(crops), np.stack(mats), np.stack(gts)

    def score(runner) -> float:
        det._runner = runner
        pred = transform_points(det.predict_crops(crops).astype(np.float64), invert_affine(mats))
        return float(np.mean(normalised_errors(pred.astype(np.float32), gts, norm="inter-ocular")) * 100)

    result = {"weights": path.name, "weights_sha256": sha256_file(path), "set": f"validation split ({len(val)} "
              "faces of the 300-W training folders, seed 0)", "boxes": "gt", "machine": cpu_name(),
              "settings": {k: v for k, v in QUANT_SETTINGS.items() if k != "fp32_nodes"}, "rows": []}
    result["rows"].append({"variant": "torch fp32", "nme": score(det._runner)})
    cal, _ = calibration_crops(train, cfg, 256)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(det.model, Path(tmp) / "fp32.onnx")
        for label, exclude in (("int8, every Conv/Gemm", []), ("int8, heads fp32 (the library's)", None)):
            t = time.perf_counter()
            out = quantize_int8(fp32, Path(tmp) / "int8.onnx", cal, fp32_nodes=exclude)
            result["rows"].append({"variant": label, "fp32_nodes": exclude if exclude is not None else list(head_nodes(fp32)), "nme": score(OrtRunner(out, args.threads)),
                                   "seconds": round(time.perf_counter() - t, 1)})
            print(result["rows"][-1]["variant"], f"{result['rows'][-1]['nme']:.3f}", flush=True)
    print("| variant | validation NME % | vs fp32 |\n|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['variant']} | {r['nme']:.3f} | {r['nme'] - result['rows'][0]['nme']:+.3f} |")
    Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
