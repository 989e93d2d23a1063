"""Static int8 quantisation of an exported SMT-Net graph with ONNX Runtime.

Recipe (stored in the int8 model's metadata as ``facelandmarks_smt.calibration``): QDQ format,
int8 per-channel weights, uint8 per-tensor activations, the heatmap and coordinate heads left in
fp32 (quantising them cost 0.54 validation NME, keeping them 0.06, for 1 % of the FLOPs:
docs/benchmarks.md), MinMax ranges calibrated on a few hundred
face crops made with the library's own crop code (`geometry.crop_matrix` around each face's
ground-truth landmark box) from *training* folders, drawn with a fixed seed. Calibrating on test
faces would leak them into the reported accuracy, so never pass the 300-W common or challenge sets.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import ModelConfig
from ..datasets.calibration import (DEFAULT_NUM_FACES, DEFAULT_SEED, SELECTION, calibration_dataset, content_sha256,
                                    select_faces)
from ..fileio import atomic_write
from ..geometry import crop_matrix, landmark_box, normalise_crops, warp_crop
from .export import INPUT_NAME, onnx_config

DEFAULT_NUM_CROPS = DEFAULT_NUM_FACES
#: Everything about the quantisation except the data; part of the int8 cache key.
QUANT_SETTINGS = {"format": "QDQ", "weights": "int8 per-channel", "activations": "uint8 per-tensor",
                  "calibration_method": "MinMax", "reduce_range": False, "ops": ["Conv", "Gemm", "MatMul"],
                  "fp32_nodes": "heatmap_heads.*, coord_heads.*"}
#: Nodes whose names hold one of these stay fp32: the heads decide the argmax and the sub-pixel residual.
FP32_NODE_PATTERNS = ("/heatmap_heads.", "/coord_heads.")


def head_nodes(graph) -> list[str]:
    """Names of the heatmap- and coordinate-head nodes of an exported graph (a path or ModelProto)."""
    import onnx

    proto = graph if isinstance(graph, onnx.ModelProto) else onnx.load(str(graph), load_external_data=False)
    return [n.name for n in proto.graph.node if any(p in n.name for p in FP32_NODE_PATTERNS)]


def calibration_crops(folders, config: ModelConfig, num: int = DEFAULT_NUM_CROPS,
                      seed: int = DEFAULT_SEED) -> tuple[np.ndarray, dict]:
    """``num`` uint8 NHWC crops drawn without replacement (fixed ``seed``) from annotated folders
    (images + .pts; or a `datasets.LandmarkDataset`: see `datasets.calibration`), cropped around
    each face's landmark box, and the recipe that made them."""
    data, folders = calibration_dataset(folders)
    if len(data) == 0:
        raise ValueError(f"no annotated faces found in {list(map(str, folders))}")
    idx = select_faces(len(data), num, seed)
    crops = []
    for i in idx:
        image, landmarks, _ = data[int(i)]
        m = crop_matrix(landmark_box(landmarks), config.crop_factor, config.input_size)
        crops.append(warp_crop(np.asarray(image), m, config.input_size))
    recipe = {"folders": [_short(f) for f in folders],
              "faces_available": len(data), "num_crops": len(idx), "seed": seed,
              "content_sha256": content_sha256(data, num, seed),
              "selection": SELECTION,
              "crop": f"crop_matrix(ground-truth landmark box, crop_factor={config.crop_factor}, "
                      f"size={config.input_size}), no augmentation",
              **QUANT_SETTINGS}
    return np.stack(crops), recipe


def quantize_int8(fp32_model: str | os.PathLike, out: str | os.PathLike, crops: np.ndarray,
                  recipe: dict | None = None, fp32_nodes: Sequence[str] | None = None) -> Path:
    """Write the int8 QDQ version of an exported fp32 graph, calibrated on uint8 NHWC ``crops``.
    ``fp32_nodes``: nodes left unquantised (default: the heads, `head_nodes`)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    config = onnx_config(fp32_model)
    crops = np.asarray(crops)
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (config.input_size, config.input_size, 3):
        raise ValueError(f"calibration crops must be (N, {config.input_size}, {config.input_size}, 3) uint8, "
                         f"got {crops.dtype} {crops.shape}")
    if len(crops) == 0:
        raise ValueError("no calibration crops")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([normalise_crops(crops[i:i + 16], config.mean, config.std).numpy()
                                  for i in range(0, len(crops), 16)])

        def get_next(self):
            x = next(self._batches, None)
            return None if x is None else {INPUT_NAME: x}

    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(fp32_model), str(prepped), skip_symbolic_shape=True)
        q = Path(tmp) / "int8.onnx"
        quantize_static(str(prepped), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        reduce_range=QUANT_SETTINGS["reduce_range"], calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=QUANT_SETTINGS["ops"], nodes_to_exclude=list(head_nodes(prepped) if fp32_nodes is None else fp32_nodes))
        proto = onnx.load(str(q))
    src = {p.key: p.value for p in onnx.load(str(fp32_model), load_external_data=False).metadata_props}
    del proto.metadata_props[:]
    for key, value in {**src, "facelandmarks_smt.precision": "int8",
                       "facelandmarks_smt.calibration": json.dumps(recipe or {"num_crops": len(crops), **QUANT_SETTINGS},
                                                                   sort_keys=True)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return atomic_write(out, proto.SerializeToString())


def _short(folder) -> str:
    """``helen/trainset`` rather than a machine-specific absolute path."""
    p = Path(folder)
    return f"{p.parent.name}/{p.name}" if p.name.lower() in ("trainset", "train", "testset", "test") else p.name


def recipe_key(recipe: dict) -> str:
    """A short digest of a calibration recipe, for cache file names."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
