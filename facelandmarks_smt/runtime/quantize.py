"""Static int8 quantisation of an exported SMT-Net graph with ONNX Runtime.

Recipe (stored in the int8 model's metadata as ``facelandmarks_smt.calibration``): QDQ format,
int8 per-channel weights, uint8 per-tensor activations, the heatmap and coordinate heads and the
last stack's feature block that feeds them (but its first convolution) left in fp32 (`fp32_nodes`; quantising the heads cost
0.54 validation NME, keeping them 0.06-0.09, keeping the block too 0.02-0.04: docs/benchmarks.md), MinMax ranges calibrated on 32 (`DEFAULT_NUM_CROPS`)
face crops made with the library's own crop code (`geometry.crop_matrix` around each face's
ground-truth landmark box) from *training* folders, drawn with a fixed seed. Calibrating on test
faces would leak them into the reported accuracy, so never pass the 300-W common or challenge sets.

The crops are streamed to the calibration session one at a time (`CropBatches`), and the ranges
are collected by our own optimised session (`calibrate_ranges`) and handed to ``quantize_static``
as precomputed ranges: the first build went from 85 s and +3.6 GB to a fraction of that
(docs/benchmarks.md, "The first int8 build"). Every calibration setting is part of the recipe and
so of the int8 cache key (`quant_settings`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import ModelConfig
from ..datasets.calibration import (DEFAULT_NUM_FACES, DEFAULT_SEED, SELECTION, calibration_dataset, content_sha256,
                                    select_faces)
from ..fileio import atomic_write
from ..geometry import crop_matrix, landmark_box, normalise_crops, warp_crop
from .device import cpu_int8_saturates
from .export import INPUT_NAME, onnx_config

DEFAULT_NUM_CROPS = DEFAULT_NUM_FACES
#: Images per calibration run. The calibration session's memory grows with it (batch 16: +1.9 GB
#: for `small`), and batch 1 is also the fastest per image on the CPUs measured (docs/benchmarks.md).
CALIBRATION_BATCH = 1
#: How the ranges are collected (`calibrate_ranges`), where onnxruntime lets us (`quant_settings`).
CALIBRATION_SESSION = "own session, ORT_ENABLE_ALL"
#: Everything about the quantisation except the data; part of the int8 cache key.
QUANT_SETTINGS = {"format": "QDQ", "weights": "int8 per-channel", "activations": "uint8 per-tensor",
                  "calibration_method": "MinMax", "reduce_range": "auto", "ops": ["Conv", "Gemm", "MatMul"],
                  "fp32_nodes": "heatmap_heads.*, coord_heads.*, the last stack's features.* but its first conv",
                  "calibration_batch": CALIBRATION_BATCH}
#: Nodes whose names hold one of these stay fp32: the heads decide the argmax and the sub-pixel residual.
FP32_NODE_PATTERNS = ("/heatmap_heads.", "/coord_heads.")
_FEATURE_BLOCK = re.compile(r"/features\.(\d+)/")


def fp32_nodes(graph) -> list[str]:
    """The nodes an int8 graph keeps fp32: the heads (`head_nodes`) and the last stack's feature
    block, which feeds them, but for that block's first convolution. Chosen on the validation split
    of the 300-W training folders (`benchmarks/int8_variants.py`, 256 calibration crops; fp32 -> int8
    NME): small v8 +0.087 with the heads alone fp32, +0.043 with the block too; tiny v2 +0.044 / +0.015.
    Quantising the block's first 3x3 convolution as well (most of the fp32 time in OpenVINO) cost
    nothing measurable (OpenVINO: small v8 +0.033 -> +0.038, tiny v3 +0.015 -> +0.008). Keeping the
    stem's first convolution or the last hourglass's top level fp32 as well did not help
    (docs/benchmarks.md)."""
    import onnx

    proto = graph if isinstance(graph, onnx.ModelProto) else onnx.load(str(graph), load_external_data=False)
    names = [n.name for n in proto.graph.node]
    stacks = [int(m.group(1)) for m in map(_FEATURE_BLOCK.search, names) if m]
    last = max(stacks) if stacks else None
    block, first_conv = f"/features.{last}/", f"/features.{last}/features.{last}.0/conv1/"
    return [n for n in names if any(p in n for p in FP32_NODE_PATTERNS)
            or (last is not None and block in n and first_conv not in n)]


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
              **quant_settings()}
    return np.stack(crops), recipe


class CropBatches:
    """A calibration data reader (onnxruntime's ``CalibrationDataReader`` protocol: ``get_next``)
    that streams ``crops`` (uint8 NHWC: an array, or any iterable of HxWx3 crops, e.g. a generator)
    as normalised NCHW float32 batches of at most ``batch`` images. It draws crops from the source
    only when a batch is asked for, so it never holds more than one batch of float images (the old
    reader normalised all 256 crops up front: 200 MB)."""

    def __init__(self, crops, config: ModelConfig, batch: int = CALIBRATION_BATCH) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.config, self.batch = config, int(batch)
        self._source = iter(crops)
        self.batches = 0  # batches handed out so far
        self.crops = 0  # crops drawn from the source so far

    def get_next(self) -> dict[str, np.ndarray] | None:
        size = self.config.input_size
        chunk = []
        for crop in self._source:
            crop = np.asarray(crop)
            if crop.dtype != np.uint8 or crop.shape != (size, size, 3):
                raise ValueError(f"calibration crops must be ({size}, {size}, 3) uint8, got {crop.dtype} {crop.shape}")
            chunk.append(crop)
            self.crops += 1
            if len(chunk) == self.batch:
                break
        if not chunk:
            return None
        self.batches += 1
        return {INPUT_NAME: normalise_crops(np.stack(chunk), self.config.mean, self.config.std).numpy()}

    def __iter__(self):
        return self

    def __next__(self):
        x = self.get_next()
        if x is None:
            raise StopIteration
        return x


def _own_calibration_supported() -> bool:
    """Whether this onnxruntime's ``quantize_static`` takes precomputed ranges (``calibration_cache_path``),
    so that the ranges can come from our own, optimised calibration session."""
    import inspect

    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def quant_settings() -> dict:
    """`QUANT_SETTINGS` plus how the installed onnxruntime collects the ranges: everything about the
    quantisation except the data, the part of the int8 cache key that is not the data."""
    own = _own_calibration_supported()
    session = CALIBRATION_SESSION if own else "onnxruntime quantize_static's own (no graph optimisations)"
    return {**QUANT_SETTINGS, "calibration_session": session, "reduce_range": reduce_range()}


def reduce_range() -> bool:
    """7-bit weights (``reduce_range``) where the CPU's int8 dot product saturates with 8-bit ones
    (`device.cpu_int8_saturates`: x86 without VNNI). Measured on an AVX2-only EPYC, tiny on LFPW test:
    int8 cost +0.137 NME over fp32 with 8-bit weights, +0.056 with 7-bit (docs/benchmarks.md).
    ``QUANT_SETTINGS["reduce_range"]`` = True or False overrides the CPU check."""
    setting = QUANT_SETTINGS["reduce_range"]
    return cpu_int8_saturates() if setting == "auto" else bool(setting)


def pre_process(fp32_model: str | os.PathLike, out: str | os.PathLike) -> Path:
    """onnxruntime's quantisation pre-processing (shape inference and basic graph optimisation;
    symbolic shape inference is skipped: the graph has no symbolic dimension but the batch)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32_model), str(out), skip_symbolic_shape=True)
    return Path(out)


def calibrate_ranges(model: str | os.PathLike, reader, augmented: str | os.PathLike, threads: int | None = None):
    """MinMax ranges (onnxruntime ``TensorsData``) of the inputs and outputs of the Conv/Gemm/MatMul
    nodes of ``model``, collected by running ``reader``'s batches through a copy of the graph with
    ReduceMin/ReduceMax outputs (written to ``augmented``). Unlike ``quantize_static``'s own
    session (every graph optimisation off), this one runs optimised: the Reduce nodes read each
    calibrated tensor, so no fusion can change a value they see, and the run is faster. The
    collected outputs are reduced per batch: memory does not grow with the number of batches."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import MinMaxCalibrater

    class Calibrater(MinMaxCalibrater):
        def create_inference_session(self) -> None:
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if threads:
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
            self.infer_session = ort.InferenceSession(self.augmented_model_path, sess_options=opts,
                                                      providers=["CPUExecutionProvider"])

    calibrater = Calibrater(Path(model), op_types_to_calibrate=QUANT_SETTINGS["ops"],
                            augmented_model_path=str(augmented))
    calibrater.augment_graph()
    calibrater.create_inference_session()
    calibrater.collect_data(reader)
    ranges = calibrater.compute_data()
    del calibrater
    return ranges


default_fp32_nodes = fp32_nodes  # `quantize_int8`'s argument of the same name hides the function


def _check_crops(crops, config: ModelConfig) -> None:
    if isinstance(crops, np.ndarray):
        size = config.input_size
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise ValueError(f"calibration crops must be (N, {size}, {size}, 3) uint8, got {crops.dtype} {crops.shape}")
        if len(crops) == 0:
            raise ValueError("no calibration crops")


def collect_ranges(fp32_model: str | os.PathLike, crops, threads: int | None = None) -> dict[str, list[float]]:
    """The MinMax range ``[lowest, highest]`` of every tensor that int8 quantisation of an exported
    fp32 graph calibrates, collected on uint8 NHWC ``crops`` (streamed, `CropBatches`): what
    `quantize_from_ranges` needs, and what a weights file can ship so that its int8 graph is built
    on any machine without calibration data (`graphs.write_int8_ranges`)."""
    config = onnx_config(fp32_model)
    _check_crops(crops, config)
    reader = CropBatches(crops, config, QUANT_SETTINGS["calibration_batch"])
    with tempfile.TemporaryDirectory() as tmp:
        prepped = pre_process(fp32_model, Path(tmp) / "prepped.onnx")
        data = calibrate_ranges(prepped, reader, Path(tmp) / "augmented.onnx", threads)
    if reader.crops == 0:
        raise ValueError("no calibration crops")
    return {name: [float(np.asarray(t.range_value[0]).reshape(-1)[0]), float(np.asarray(t.range_value[1]).reshape(-1)[0])]
            for name, t in data.items()}


def _quantize_static_settings(conv_outputs: bool = True) -> dict:
    """``quantize_static``'s arguments for `QUANT_SETTINGS` (both ways of building an int8 graph).
    ``conv_outputs=False`` leaves the outputs of the quantised ops in float: a measured alternative
    (`benchmarks/int8_variants.py --conv-outputs float`), not the library's graph, since OpenVINO 2026.4
    miscomputes it for this network (docs/benchmarks.md)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    extra = {} if conv_outputs else {"OpTypesToExcludeOutputQuantization": list(QUANT_SETTINGS["ops"])}
    return dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, reduce_range=reduce_range(),
                calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=QUANT_SETTINGS["ops"],
                extra_options=extra)


def quantize_from_ranges(fp32_model: str | os.PathLike, out: str | os.PathLike, ranges: dict[str, Sequence[float]],
                         recipe: dict, fp32_nodes: Sequence[str] | None = None, conv_outputs: bool = True) -> Path:
    """Write the int8 QDQ version of an exported fp32 graph from precomputed ranges (`collect_ranges`).
    ``conv_outputs=False``: the quantised ops' outputs stay float (see `_quantize_static_settings`).
    Raises ValueError when the ranges lack a tensor this graph calibrates (they were collected from
    another export of the network) or when this onnxruntime cannot take precomputed ranges."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, quantize_static
    from onnxruntime.quantization.calibrate import MinMaxCalibrater, TensorData, TensorsData, save_tensors_data

    if not _own_calibration_supported():
        raise ValueError("this onnxruntime's quantize_static takes no precomputed ranges: pass calibration data")
    kwargs = _quantize_static_settings(conv_outputs)
    with tempfile.TemporaryDirectory() as tmp:
        prepped = pre_process(fp32_model, Path(tmp) / "prepped.onnx")
        calibrater = MinMaxCalibrater(prepped, op_types_to_calibrate=QUANT_SETTINGS["ops"],
                                      augmented_model_path=str(Path(tmp) / "unused.onnx"))
        needed, _ = calibrater.select_tensors_to_calibrate(onnx.load(str(prepped)))
        missing = sorted(set(needed) - set(ranges))
        if missing:
            raise ValueError(f"the int8 ranges do not fit this graph: {len(missing)} of its {len(needed)} calibrated "
                             f"tensors have none (e.g. {missing[0]!r}); they were collected from another export")
        ranges_file = Path(tmp) / "ranges.json"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, {
            name: TensorData(lowest=np.float32(ranges[name][0]), highest=np.float32(ranges[name][1]))
            for name in needed}), ranges_file)
        exclude = list(default_fp32_nodes(prepped) if fp32_nodes is None else fp32_nodes)
        q = Path(tmp) / "int8.onnx"
        quantize_static(str(prepped), str(q), None, nodes_to_exclude=exclude, calibration_cache_path=str(ranges_file),
                        **kwargs)
        proto = onnx.load(str(q))
    return _write_with_metadata(proto, fp32_model, out, recipe)


def float_conv_outputs(graph: str | os.PathLike | bytes) -> bytes:
    """The int8 QDQ graph ``graph`` with the re-quantisation of each quantised op's output taken out, as
    serialised ONNX: every ``Conv -> QuantizeLinear -> DequantizeLinear`` pair on the op's output is
    bypassed for consumers that are not themselves quantised ops (BatchNorm, Add, Concat, pooling, ...),
    and removed where nothing else reads it. Inputs and weights stay quantised with the same ranges, so
    this is the graph ``quantize_from_ranges(..., conv_outputs=False)`` builds from the same ranges (the
    same outputs, tested), made from the one cached graph that onnxruntime runs.

    Why: onnxruntime wants the re-quantised outputs (its QLinearConv fusion), but OpenVINO then runs a
    FakeQuantize + Convert pair after every convolution; without them its CPU plugin fuses each
    convolution with the next BatchNorm-ReLU-quantise (docs/benchmarks.md). OpenVINO 2026.4.1 miscomputes
    this graph when its batch is dynamic (a convolution whose float output feeds both a Concat and the
    next BatchNorm), so `openvino_backend.OpenVINORunner` compiles it for static batch sizes only."""
    import onnx

    proto = onnx.load_model_from_string(graph) if isinstance(graph, bytes) else onnx.load(str(graph))
    nodes = list(proto.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    readers: dict[str, list] = {}
    for n in nodes:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    quantised_ops = set(QUANT_SETTINGS["ops"])
    dropped = set()
    for q in nodes:
        source = producer.get(q.input[0]) if q.op_type == "QuantizeLinear" else None
        if source is None or source.op_type not in quantised_ops:
            continue
        dqs = readers.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
            continue
        still_read = False
        for dq in dqs:
            for reader in readers.get(dq.output[0], []):
                if reader.op_type in quantised_ops:  # a quantised op reads its quantised input: keep the pair
                    still_read = True
                    continue
                reader.input[:] = [q.input[0] if name == dq.output[0] else name for name in reader.input]
        if not still_read:
            dropped.update(id(n) for n in (q, *dqs))
    if any(out.name in {o for n in nodes if id(n) in dropped for o in n.output} for out in proto.graph.output):
        raise ValueError("float_conv_outputs: a graph output is a re-quantised tensor; not an SMT-Net int8 graph")
    del proto.graph.node[:]
    proto.graph.node.extend(n for n in nodes if id(n) not in dropped)
    used = {name for n in proto.graph.node for name in n.input}
    kept = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    return proto.SerializeToString()


def _write_with_metadata(proto, fp32_model, out, recipe: dict) -> Path:
    """``proto`` written to ``out`` with the fp32 graph's metadata plus the precision and the recipe."""
    import onnx

    src = {p.key: p.value for p in onnx.load(str(fp32_model), load_external_data=False).metadata_props}
    del proto.metadata_props[:]
    for key, value in {**src, "facelandmarks_smt.precision": "int8",
                       "facelandmarks_smt.calibration": json.dumps(recipe, sort_keys=True)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return atomic_write(out, proto.SerializeToString())


def quantize_int8(fp32_model: str | os.PathLike, out: str | os.PathLike, crops, recipe: dict | None = None,
                  fp32_nodes: Sequence[str] | None = None, threads: int | None = None,
                  conv_outputs: bool = True) -> Path:
    """Write the int8 QDQ version of an exported fp32 graph, calibrated on uint8 NHWC ``crops``
    (an array, or any iterable of HxWx3 crops: they are streamed, `CropBatches`).
    ``fp32_nodes``: nodes left unquantised (default: `fp32_nodes`, the heads and the block feeding
    them). ``threads``: intra-op threads of the calibration session (default: onnxruntime's, one
    per physical core). Ranges are collected by `collect_ranges` and applied by
    `quantize_from_ranges`: the same graph as from shipped ranges of the same crops."""
    import onnx
    from onnxruntime.quantization import quantize_static

    config = onnx_config(fp32_model)
    _check_crops(crops, config)
    if _own_calibration_supported():
        ranges = collect_ranges(fp32_model, crops, threads)
        return quantize_from_ranges(fp32_model, out, ranges, recipe or {"num_crops": _count(crops), **quant_settings()},
                                    fp32_nodes, conv_outputs)
    # an older onnxruntime: its own calibration session, still fed one streamed batch at a time
    reader = CropBatches(crops, config, QUANT_SETTINGS["calibration_batch"])
    kwargs = _quantize_static_settings(conv_outputs)
    with tempfile.TemporaryDirectory() as tmp:
        prepped = pre_process(fp32_model, Path(tmp) / "prepped.onnx")
        exclude = list(default_fp32_nodes(prepped) if fp32_nodes is None else fp32_nodes)
        q = Path(tmp) / "int8.onnx"
        quantize_static(str(prepped), str(q), reader, nodes_to_exclude=exclude, **kwargs)
        if reader.crops == 0:
            raise ValueError("no calibration crops")
        proto = onnx.load(str(q))
    return _write_with_metadata(proto, fp32_model, out, recipe or {"num_crops": reader.crops, **quant_settings()})


def _count(crops) -> int | None:
    return len(crops) if hasattr(crops, "__len__") else None


def _short(folder) -> str:
    """``helen/trainset`` rather than a machine-specific absolute path."""
    p = Path(folder)
    return f"{p.parent.name}/{p.name}" if p.name.lower() in ("trainset", "train", "testset", "test") else p.name


def recipe_key(recipe: dict) -> str:
    """A short digest of a calibration recipe, for cache file names."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
