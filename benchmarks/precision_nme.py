"""300-W common-set NME of each backend/precision of one weights file (ground-truth boxes).

    python benchmarks/precision_nme.py [--weights smtnet-300w-small] [--data /path/to/landmarks68]
                                       [--json docs/results/precision_nme_<weights name>.json]

Rows: onnxruntime int8 (calibrated on crops of the 300-W training folders, never the test faces),
onnxruntime fp32, torch fp32, torch fp32 with flip test-time augmentation, torch bf16, and, with
the `openvino` extra, OpenVINO fp32 and int8 (the same int8 graph) and, for weights that ship one,
the OpenVINO int8 model NNCF made (`training.openvino_int8`). ``--variants`` runs some rows
and keeps the other rows of an existing JSON for the same weights (same sha256). The JSON
is rewritten after each row, so a long run (bf16 is slow on CPUs without native bf16) keeps what
it finished. `inference_speed.py` reads this JSON when its weights sha256 matches. Faces are
cropped once around their ground-truth landmark boxes (as `evaluate_detector(boxes="gt")` does)
and every variant runs on the same crops.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from facelandmarks_smt import Detector, hub
from facelandmarks_smt.preprocess import invert_affine, transform_points
from facelandmarks_smt.runtime.graphs import shipped_openvino_int8
from facelandmarks_smt.training.datasets import three_hundred_w
from facelandmarks_smt.training.evaluate import evaluate_predictions
from facelandmarks_smt.training.metrics import landmark_boxes
from facelandmarks_smt.weights_io import sha256_file

from machine import cpu_name  # benchmarks/machine.py (scripts run from this folder)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = os.environ.get("FACELANDMARKS_SMT_DATA", "/work/shared/data/landmarks68")
RESULTS = REPO / "docs" / "results"


def default_json(weights: str) -> Path:
    """Where the rows of one weights file go: ``docs/results/precision_nme_<name>.json``."""
    return RESULTS / f"precision_nme_{Path(str(weights)).name.removesuffix('.safetensors')}.json"


#: (label, Detector keyword arguments), in the order they are run (most informative first).
VARIANTS = [
    ("onnxruntime int8", {"backend": "onnxruntime", "precision": "int8"}),
    ("onnxruntime fp32", {"backend": "onnxruntime", "precision": "fp32"}),
    ("torch fp32", {"backend": "torch", "precision": "fp32"}),
    ("torch fp32 + flip test", {"backend": "torch", "precision": "fp32", "flip_test": True}),
    ("torch bf16", {"backend": "torch", "precision": "bf16"}),
    ("openvino fp32", {"backend": "openvino", "precision": "fp32"}),
    ("openvino int8", {"backend": "openvino", "precision": "int8"}),
    # the OpenVINO int8 model NNCF made, shipped beside the weights (`training.openvino_int8`): what
    # Detector(backend="openvino", precision="int8") runs without a calibration argument
    ("openvino int8, NNCF model", {"backend": "openvino", "precision": "int8", "shipped_model": True}),
    ("openvino bf16", {"backend": "openvino", "precision": "bf16"}),  # only on CPUs with native bf16
]


def training_folders(data_root: str | os.PathLike):
    """The 300-W training faces (afw, helen/trainset, lfpw/trainset), for int8 calibration."""
    return three_hundred_w(data_root, "train")


def gt_crops(det: Detector, faces, limit: int | None = None):
    """Crops of each face around its ground-truth landmark box (the paper's protocol, as in
    `evaluate_detector(boxes="gt")`), their crop matrices and the ground truth. Made once and shared
    by all variants, which then differ only in the network call, like in `Detector`."""
    n = len(faces) if limit is None else min(limit, len(faces))
    crops, mats, gts = [], [], []
    for i in range(n):
        image, landmarks, _ = faces[i]
        gt = np.asarray(landmarks, np.float32)
        c, m = det.crop(image, landmark_boxes(gt)[:1])
        crops.append(c[0])
        mats.append(m[0])
        gts.append(gt)
    return np.stack(crops), np.stack(mats), np.stack(gts)


def common_crops(det: Detector, data_root: str, limit: int | None = None):
    """`gt_crops` of every 300-W common-set face."""
    return gt_crops(det, three_hundred_w(data_root, "common"), limit)


def score_crops(det: Detector, crops, mats, gts, label: str) -> dict:
    """Metrics (inter-ocular NME, ...) of ``det`` on crops made by `gt_crops`."""
    pts = det.predict_crops(crops)
    pred = transform_points(pts.astype(np.float64), invert_affine(mats)).astype(np.float32)
    return evaluate_predictions(pred, gts, None, label, "gt")["metrics"]


def evaluate_precisions(weights: str, data_root: str, out_json: str | os.PathLike | None, threads: int = 1,
                        variants=None, limit: int | None = None) -> dict:
    path, _ = hub.resolve(weights)
    calibration = training_folders(data_root)
    crops = mats = gts = None
    result = {"weights": str(path.name), "weights_sha256": sha256_file(path), "set": "300-W common (helen/testset + "
              "lfpw/testset)", "boxes": "gt", "normalisation": "inter-ocular", "machine": cpu_name(),
              "torch": torch.__version__, "rows": []}
    if variants is not None and out_json and Path(out_json).is_file():
        # a partial run (--variants) keeps the rows it does not redo, when they are for these weights
        old = json.loads(Path(out_json).read_text())
        if old.get("weights_sha256") == result["weights_sha256"]:
            redo = {label for label, _ in variants}
            result["rows"] = [r for r in old.get("rows", []) if r["variant"] not in redo]
    for label, kwargs in variants or VARIANTS:
        why_not = _unavailable(kwargs)
        if why_not:
            print(f"{label:26} skipped: {why_not}", flush=True)
            continue
        kwargs = dict(kwargs)
        shipped = kwargs.pop("shipped_model", False)
        if shipped and shipped_openvino_int8(result["weights_sha256"]) is None:
            print(f"{label:26} skipped: these weights ship no OpenVINO int8 model", flush=True)
            continue
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # bf16 emulation warning
            det = Detector.from_pretrained(weights, device="cpu", threads=threads,
                                           calibration=calibration if kwargs.get("precision") == "int8"
                                           and not shipped else None, **kwargs)
        if crops is None:
            crops, mats, gts = common_crops(det, data_root, limit)
        m = score_crops(det, crops, mats, gts, label)
        row = {"variant": label, **kwargs, "faces": m["faces"], "nme": m["nme"], "nme49": m["nme49"],
               "fr8": m["fr8"], "auc8": m["auc8"], "seconds": round(time.perf_counter() - t, 1)}
        if shipped:
            record = shipped_openvino_int8(result["weights_sha256"])
            row["model"] = {"file": record.name, "sha256": sha256_file(record)}
        elif kwargs.get("precision") == "int8":
            row["calibration"] = _int8_recipe(det)
        result["rows"] = [r for r in result["rows"] if r["variant"] != label] + [row]
        print(f"{label:26} NME {m['nme']:.3f}%  ({m['faces']} faces, {row['seconds']:.0f} s)", flush=True)
        if out_json:
            Path(out_json).parent.mkdir(parents=True, exist_ok=True)
            Path(out_json).write_text(json.dumps(result, indent=2))
    return result


def _unavailable(kwargs: dict) -> str | None:
    """Why a variant cannot run here (OpenVINO not installed, or its bf16 without native bf16), else None."""
    if kwargs.get("backend") != "openvino":
        return None
    try:
        from facelandmarks_smt.runtime.openvino_backend import check_openvino_precision

        check_openvino_precision(kwargs.get("precision", "fp32"))
    except (ImportError, ValueError) as e:
        return str(e).split(";")[0]
    return None


def _int8_recipe(det: Detector) -> dict | None:
    session = getattr(det._runner, "session", None)
    if session is None or not hasattr(session, "get_modelmeta"):
        return None  # not an onnxruntime session (OpenVINO runs the same cached int8 graph)
    meta = session.get_modelmeta().custom_metadata_map
    recipe = meta.get("facelandmarks_smt.calibration")
    return json.loads(recipe) if recipe else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="smtnet-300w-small", help="registered name or .safetensors path")
    p.add_argument("--data", default=DEFAULT_DATA, help="folder holding 300w/ (or its parent)")
    p.add_argument("--json", default=None, help="default: docs/results/precision_nme_<weights name>.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="first N faces only (a quick check)")
    p.add_argument("--variants", nargs="+", choices=[v[0] for v in VARIANTS], metavar="LABEL",
                   help=f"run only these, in this order (default: all of {[v[0] for v in VARIANTS]})")
    args = p.parse_args()
    variants = [next(v for v in VARIANTS if v[0] == label) for label in args.variants] if args.variants else None
    evaluate_precisions(args.weights, args.data, args.json or default_json(args.weights), args.threads, variants=variants, limit=args.limit)


if __name__ == "__main__":
    main()
