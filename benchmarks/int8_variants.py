"""Which nodes int8 may quantise: validation-split NME of int8 graphs against torch fp32.

    python benchmarks/int8_variants.py [--weights W] [--data /path/to/landmarks68] [--json out.json]

Scored on the validation split of the 300-W training folders (val_fraction 0.1, seed 0: the faces
the trainer selects models on), never on the common test set, with ground-truth landmark boxes.
Variants: every Conv/Gemm quantised, heatmap and coordinate heads kept fp32 (the library's recipe
until 2026-12-07), and that with more of the network kept fp32 (`MORE_FP32`: the stem's first
convolution, which sees raw pixels; the last stack's feature block, which feeds the heads; the last
hourglass's top level), to find a graph within issue 16's 0.05 NME budget (``--variants`` picks).
The library now keeps the heads and the last feature block fp32 (`quantize.fp32_nodes`), chosen here. Both: QDQ, int8 per-channel weights, uint8 activations, MinMax on 256 crops of the training
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
from facelandmarks_smt.geometry import invert_affine, transform_points
from facelandmarks_smt.runtime.backends import OpenVINORunner, OrtRunner
from facelandmarks_smt.runtime.export import export_onnx
from facelandmarks_smt.runtime.quantize import QUANT_SETTINGS, calibration_crops, head_nodes, quantize_int8
from facelandmarks_smt.training.datasets import load_datasets, split_dataset
from facelandmarks_smt.training.metrics import landmark_boxes, normalised_errors
from facelandmarks_smt.weights_io import sha256_file

from machine import cpu_name
from precision_nme import DEFAULT_DATA

REPO = Path(__file__).resolve().parent.parent
#: Variants that keep more than the heads fp32: name -> substrings of the node names kept fp32 besides the heads.
MORE_FP32 = {
    "heads + stem conv fp32": ["/model/stem/conv/"],
    "heads + last feature block fp32": ["/model/features.1/"],
    "heads + stem conv + last feature block fp32": ["/model/stem/conv/", "/model/features.1/"],
    # the block's first 3x3 convolution is most of the fp32 time in OpenVINO (tiny: 0.68 of 1.2 ms)
    "heads + last feature block fp32 but its first conv":
        ["/model/features.1/features.1.0/conv2/", "/model/features.1/features.1.0/conv3/",
         "/model/features.1/features.1.1/"],
    "heads + stem conv + last feature block + last hourglass top level fp32":
        ["/model/stem/conv/", "/model/features.1/", "/model/hourglasses.1/up/", "/model/hourglasses.1/skip/"],
}
BASE_VARIANTS = ("int8, every Conv/Gemm", "int8, heads fp32")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="smtnet-300w-small")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=str(REPO / "docs" / "results" / "int8_variants.json"))
    p.add_argument("--variants", nargs="+", default=list(BASE_VARIANTS), metavar="NAME",
                   help=f"which int8 variants (default: the first two); any of {list(BASE_VARIANTS) + list(MORE_FP32)}")
    p.add_argument("--backend", choices=["onnxruntime", "openvino"], default="onnxruntime",
                   help="which runtime scores the int8 graphs (openvino: its CPU plugin, fp32 for float layers)")
    p.add_argument("--conv-outputs", nargs="+", choices=["quantised", "float"], default=["quantised"],
                   help="quantise the outputs of the quantised ops too (onnxruntime's form: its QLinearConv "
                        "fusion needs them) or leave them float (OpenVINO fuses conv + BN + ReLU + quantise)")
    args = p.parse_args()
    unknown = sorted(set(args.variants) - set(BASE_VARIANTS) - set(MORE_FP32))
    if unknown:
        p.error(f"unknown variants {unknown}")
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

    result = {"weights": path.name, "weights_sha256": sha256_file(path), "backend": args.backend, "set": f"validation split ({len(val)} "
              "faces of the 300-W training folders, seed 0)", "boxes": "gt", "machine": cpu_name(),
              "settings": {k: v for k, v in QUANT_SETTINGS.items() if k != "fp32_nodes"}, "rows": []}
    result["rows"].append({"variant": "torch fp32", "nme": score(det._runner)})
    cal, _ = calibration_crops(train, cfg, 256)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(det.model, Path(tmp) / "fp32.onnx")
        import onnx

        nodes = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node]
        exclusions = {BASE_VARIANTS[0]: [], BASE_VARIANTS[1]: list(head_nodes(fp32))}
        for name, patterns in MORE_FP32.items():
            exclusions[name] = list(head_nodes(fp32)) + [n for n in nodes if any(p in n for p in patterns)]
        for label in args.variants:
            for outputs in args.conv_outputs:
                exclude = exclusions[label]
                t = time.perf_counter()
                out = quantize_int8(fp32, Path(tmp) / "int8.onnx", cal, fp32_nodes=exclude,
                                    conv_outputs=outputs == "quantised")
                runner = OrtRunner(out, args.threads) if args.backend == "onnxruntime" else \
                    OpenVINORunner(out, "int8", args.threads)
                name = label + ("" if outputs == "quantised" else ", conv outputs float")
                result["rows"].append({"variant": name, "fp32_nodes": exclude, "conv_outputs": outputs,
                                       "nme": score(runner), "seconds": round(time.perf_counter() - t, 1)})
                print(name, f"{result['rows'][-1]['nme']:.3f}", flush=True)
    print("| variant | validation NME % | vs fp32 |\n|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['variant']} | {r['nme']:.3f} | {r['nme'] - result['rows'][0]['nme']:+.3f} |")
    Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
