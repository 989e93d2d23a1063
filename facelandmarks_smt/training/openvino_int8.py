"""An OpenVINO int8 model of a weights file, made with NNCF's post-training quantisation and shipped
beside the weights (``python -m facelandmarks_smt.training quantize-openvino``).

Why: the int8 graph of `runtime.quantize` is made for onnxruntime (QDQ with quantised convolution
outputs, which onnxruntime's QLinearConv fusion needs); OpenVINO runs it with re-quantisation pairs
after every convolution. NNCF places OpenVINO's FakeQuantize nodes where its CPU plugin fuses them
(scale-shift + ReLU inside the quantised domain), and its accuracy control puts the layers that cost
most back in fp32 until the validation NME is within ``max_drop`` of fp32 (docs/benchmarks.md).

Data: calibration crops from the *training* part of the trainer's split of ``--data`` (val_fraction
0.1, seed 0, as `train`), accuracy on its validation part, ground-truth landmark boxes, fp32 heads
of the decoder as at inference. Never the 300-W common or challenge sets.

Output: ``<out>.xml`` + ``<out>.bin`` (the IR) and ``<out>.json``, the record that
`runtime.graphs.shipped_openvino_int8` reads: the weights' sha256 (the model runs only for those
weights), the files' sha256s, the recipe, the validation NME of fp32 and int8, and the layers kept
fp32 (pass them back with ``--keep-fp32-from`` to rebuild without the slow accuracy search).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .. import hub
from ..codec import decode_heatmaps, heatmap_to_crop
from ..geometry import crop_matrix, invert_affine, landmark_box, normalise_crops, transform_points, warp_crop
from ..runtime.export import INPUT_NAME, OUTPUT_NAMES, export_onnx
from ..runtime.graphs import OPENVINO_INT8_SUFFIX
from ..runtime.quantize import calibration_crops, quant_settings
from ..weights_io import load_model, sha256_file
from ..datasets import load_datasets, split_dataset
from .metrics import error_normalisation, normalised_errors

INSTALL_HINT = "pip install 'facelandmarks_smt[openvino-int8]'"
DEFAULT_MAX_DROP = 0.02
DEFAULT_NUM_CALIBRATION = 256


def import_nncf():
    try:
        import nncf
        import openvino
    except ImportError as e:
        raise ImportError(f"quantize-openvino needs NNCF and OpenVINO: {INSTALL_HINT} ({e})") from e
    return nncf, openvino


def validation_faces(dataset, config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised crops ``(N, 3, S, S)``, crop matrices ``(N, 2, 3)`` and ground truth ``(N, L, 2)`` of
    a dataset's faces, cropped around their ground-truth landmark boxes as at inference."""
    xs, mats, gts = [], [], []
    for i in range(len(dataset)):
        image, landmarks, _ = dataset[i]
        gt = np.asarray(landmarks, np.float32)
        m = crop_matrix(landmark_box(gt), config.crop_factor, config.input_size)
        xs.append(warp_crop(np.asarray(image), m, config.input_size))
        mats.append(m)
        gts.append(gt)
    if not xs:
        raise ValueError("no validation faces")
    x = np.asarray(normalise_crops(np.stack(xs), config.mean, config.std), np.float32)
    return x, np.stack(mats), np.stack(gts)


def nme_per_face(infer: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], faces, config) -> np.ndarray:
    """NME (%) per face of ``infer`` (one ``(1, 3, S, S)`` crop -> heatmaps, residuals), decoded as
    `Detector` decodes, normalised as the trainer's validation (inter-ocular for 68 points)."""
    from ..schemes import get_scheme

    x, mats, gts = faces
    try:
        scheme = get_scheme(config.scheme)
    except (ValueError, TypeError, KeyError):
        scheme = None
    kw = error_normalisation(config.num_landmarks, scheme)
    out = np.empty(len(x))
    for i in range(len(x)):
        hm, res = infer(x[i:i + 1])
        c, _ = decode_heatmaps(torch.from_numpy(np.asarray(hm)), torch.from_numpy(np.asarray(res)), config.theta)
        pts = heatmap_to_crop(c, config.heatmap_stride).numpy()[0].astype(np.float64)
        pred = transform_points(pts, invert_affine(mats[i:i + 1])[0]).astype(np.float32)
        out[i] = float(normalised_errors(pred[None], gts[i:i + 1], **kw)[0]) * 100
    return out


def _compiled_infer(compiled):
    request = compiled.create_infer_request()
    ports = {port.get_any_name(): port for port in compiled.outputs}

    def infer(x):
        r = request.infer({INPUT_NAME: x})
        return r[ports[OUTPUT_NAMES[0]]], r[ports[OUTPUT_NAMES[1]]]
    return infer


def quantised_ops(model) -> set[str]:
    """Names of the ops that read a FakeQuantize output (the layers that run in int8)."""
    names = set()
    for op in model.get_ops():
        for inp in op.inputs():
            if inp.get_source_output().get_node().get_type_name() == "FakeQuantize":
                names.add(op.get_friendly_name())
                break
    return names


def build_openvino_int8(weights: str | os.PathLike, data: Sequence[str], out: str | os.PathLike, *,
                        max_drop: float = DEFAULT_MAX_DROP, keep_fp32: Sequence[str] = (),
                        num_calibration: int = DEFAULT_NUM_CALIBRATION, val_fraction: float = 0.1,
                        seed: int = 0, extra_val_data: Sequence[str] = (), ranking_subset: int | None = None,
                        preset: str = "performance", bias_correction: str = "fast", log: Callable[[str], None] = print) -> dict:
    """Quantise ``weights`` with NNCF for OpenVINO and write ``out``.xml/.bin/.json (see the module
    docstring). ``keep_fp32``: op names left fp32 from the start; accuracy control runs only when the
    plain quantisation misses ``max_drop`` (NME points on the validation faces: the split's validation
    part plus ``extra_val_data`` folders, e.g. turned and degraded copies of those faces; a larger set
    selects less for its own noise). ``ranking_subset``: faces NNCF ranks the layers on (default: all).
    ``preset``: NNCF's "performance" (symmetric activations) or "mixed" (asymmetric activations);
    ``bias_correction``: "fast" or "full". Returns the record."""
    nncf, ov = import_nncf()
    if not max_drop >= 0:
        raise ValueError(f"max_drop must be >= 0, got {max_drop}")
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    if preset not in presets:
        raise ValueError(f"preset must be one of {sorted(presets)}, got {preset!r}")
    if bias_correction not in ("fast", "full"):
        raise ValueError(f"bias_correction must be fast or full, got {bias_correction!r}")
    path, expected = hub.resolve(weights)
    model, _ = load_model(path, sha256=expected)
    config = model.config
    sha = sha256_file(path)
    train, val = split_dataset(load_datasets([str(d) for d in data]), val_fraction, seed=seed)
    if extra_val_data:
        from ..datasets import LandmarkDataset

        val = LandmarkDataset.concat([val] + [load_datasets([str(d)]) for d in extra_val_data])
    faces = validation_faces(val, config)
    cal, cal_recipe = calibration_crops(train, config, num_calibration)
    # the crops' recipe carries the onnxruntime QDQ graph's quantisation settings too; NNCF's are its own
    cal_recipe = {k: v for k, v in cal_recipe.items() if k not in quant_settings()}
    cal_x = np.asarray(normalise_crops(cal, config.mean, config.std), np.float32)
    calibration = nncf.Dataset([cal_x[i:i + 1] for i in range(len(cal_x))])
    core = ov.Core()

    def metric(compiled, _=None):
        per = nme_per_face(_compiled_infer(compiled), faces, config)
        return -float(per.mean()), [-float(v) for v in per]

    out = Path(out)
    stem = out.name[:-len(".xml")] if out.name.endswith(".xml") else out.name
    out = out.with_name(stem)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_graph = core.read_model(str(export_onnx(model, Path(tmp) / "fp32.onnx")))
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    nme_fp32 = -metric(core.compile_model(fp32_graph, "CPU", f32))[0]
    names = {op.get_friendly_name() for op in fp32_graph.get_ops()}
    unknown = sorted(set(keep_fp32) - names)
    if unknown:
        raise ValueError(f"--keep-fp32 names ops the graph does not have: {unknown[:5]}")
    common = dict(preset=presets[preset], subset_size=len(cal_x), target_device=nncf.TargetDevice.CPU,
                  fast_bias_correction=bias_correction == "fast")
    if keep_fp32:
        common["ignored_scope"] = nncf.IgnoredScope(names=list(keep_fp32))
    t0 = time.perf_counter()
    plain = nncf.quantize(fp32_graph, calibration, **common)
    nme_plain = -metric(core.compile_model(plain, "CPU", f32))[0]
    log(f"validation NME fp32 {nme_fp32:.4f}, int8 {nme_plain:.4f} ({nme_plain - nme_fp32:+.4f}; max drop {max_drop})")
    int8, searched = plain, False
    if nme_plain - nme_fp32 > max_drop:
        log("over the budget: NNCF's accuracy control puts the costliest layers back in fp32 (slow)")
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        int8 = nncf.quantize_with_accuracy_control(
            fp32_graph, calibration, nncf.Dataset([0]), metric, max_drop=max_drop,
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(ranking_subset_size=ranking_subset),
            **common)
        searched = True
    reverted = sorted(quantised_ops(plain) - quantised_ops(int8))
    nme_int8 = -metric(core.compile_model(int8, "CPU", f32))[0]
    seconds = time.perf_counter() - t0
    if nme_int8 - nme_fp32 > max_drop + 1e-9:
        raise RuntimeError(f"int8 validation NME {nme_int8:.4f} is over fp32 {nme_fp32:.4f} + {max_drop}: not written")
    xml, bin_ = out.with_name(stem + ".xml"), out.with_name(stem + ".bin")
    ov.save_model(int8, str(xml), compress_to_fp16=False)
    record = {
        "format": 1, "weights": path.name, "weights_sha256": sha,
        "xml": xml.name, "xml_sha256": sha256_file(xml), "bin": bin_.name, "bin_sha256": sha256_file(bin_),
        "made_by": "python -m facelandmarks_smt.training quantize-openvino (facelandmarks_smt.training.openvino_int8)",
        "nncf": nncf.__version__, "openvino": ov.__version__, "torch": torch.__version__,
        "recipe": {"preset": preset, "bias_correction": bias_correction, "target_device": "CPU", "max_drop": max_drop,
                   "calibration": cal_recipe, "keep_fp32_given": sorted(keep_fp32),
                   "accuracy_control": searched, "ranking_subset": ranking_subset},
        "validation": {"faces": len(faces[0]), "split": f"val_fraction {val_fraction}, seed {seed} of "
                       f"{['/'.join(Path(d).parts[-2:]) for d in data]}"
                       + (f" + {['/'.join(Path(d).parts[-2:]) for d in extra_val_data]}" if extra_val_data else ""), "boxes": "ground-truth landmark boxes",
                       "nme_fp32": round(nme_fp32, 4), "nme_int8_plain": round(nme_plain, 4),
                       "nme_int8": round(nme_int8, 4)},
        "keep_fp32": sorted(set(keep_fp32) | set(reverted)),
        "seconds": round(seconds, 1),
    }
    xml.with_name(stem + ".json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"wrote {xml} (validation NME int8 {nme_int8:.4f}, fp32 {nme_fp32:.4f}; {len(record['keep_fp32'])} ops fp32)")
    return record


__all__ = ["build_openvino_int8", "validation_faces", "nme_per_face", "quantised_ops", "OPENVINO_INT8_SUFFIX"]
