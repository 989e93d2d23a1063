"""NME of onnxruntime int8 against fp32 for several numbers of calibration crops (the accuracy
side of the int8 build's cost: `int8_build_profile.py` measures its time and memory).

    OMP_NUM_THREADS=1 python benchmarks/int8_calibration_nme.py [--weights smtnet-300w-tiny smtnet-300w-small]
        [--num 256 64 32] [--test /path/to/300w/helen/testset] [--data /path/to/landmarks68] [--json out.json]

Calibration crops come from the 300-W training folders (afw, helen/trainset, lfpw/trainset), drawn
by `runtime.quantize.calibration_crops` (the library's own selection and crops); the faces scored
are a test folder (default helen/testset, 330 faces, ground-truth boxes, inter-ocular NME). Only the
public API is used (`Detector(..., calibration=<uint8 crops>)`, each graph built in an empty cache
folder), so the script measures whatever library version is on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from facelandmarks_smt import Detector, hub
from facelandmarks_smt.datasets.loading import load_datasets
from facelandmarks_smt.runtime.quantize import calibration_crops
from facelandmarks_smt.weights_io import load_model

from machine import cpu_name  # benchmarks/machine.py (scripts run from this folder)
from precision_nme import gt_crops, score_crops

DEFAULT_DATA = os.environ.get("FACELANDMARKS_SMT_DATA", "/work/shared/data/landmarks68")


def nme(det: Detector, crops, mats, gts) -> dict:
    m = score_crops(det, crops, mats, gts, "int8 calibration")
    return {"nme": round(m["nme"], 4), "faces": m["faces"]}


def run(weights: str, nums: list[int], train: list[str], test: str, threads: int, limit: int | None) -> dict:
    path, expected = hub.resolve(weights)
    model, _ = load_model(path, sha256=expected)
    fp32 = Detector(model, device="cpu", backend="onnxruntime", precision="fp32", threads=threads)
    crops, mats, gts = gt_crops(fp32, load_datasets([test]), limit)
    rows = [{"variant": "onnxruntime fp32", **nme(fp32, crops, mats, gts)}]
    print(f"{weights} fp32: NME {rows[0]['nme']:.4f} ({rows[0]['faces']} faces)", flush=True)
    for num in nums:
        calib, recipe = calibration_crops(train, model.config, num)
        with tempfile.TemporaryDirectory() as cache:
            os.environ["FACELANDMARKS_SMT_CACHE"] = cache
            t = time.perf_counter()
            det = Detector(str(path), device="cpu", backend="onnxruntime", precision="int8", calibration=calib,
                           threads=threads)
            build = time.perf_counter() - t
            row = {"variant": f"onnxruntime int8, {num} calibration crops", "num_crops": num,
                   "build_seconds": round(build, 1), **nme(det, crops, mats, gts)}
        row["delta_nme"] = round(row["nme"] - rows[0]["nme"], 4)
        rows.append(row)
        print(f"{weights} int8 {num:4d} crops: NME {row['nme']:.4f} ({row['delta_nme']:+.4f}), build "
              f"{build:.1f} s", flush=True)
    return {"weights": weights, "test": test, "machine": cpu_name(), "threads": threads, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", nargs="+", default=["smtnet-300w-tiny", "smtnet-300w-small"])
    p.add_argument("--num", nargs="+", type=int, default=[256, 64, 32])
    p.add_argument("--data", default=DEFAULT_DATA, help="folder holding 300w/ (or 300w itself)")
    p.add_argument("--test", default=None, help="annotated test folder (default: <data>/300w/helen/testset)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="first N test faces only")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    root = Path(args.data)
    root = root / "300w" if (root / "300w").is_dir() else root
    train = [str(root / "afw"), str(root / "helen" / "trainset"), str(root / "lfpw" / "trainset")]
    test = args.test or str(root / "helen" / "testset")
    results = [run(w, args.num, train, test, args.threads, args.limit) for w in args.weights]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
