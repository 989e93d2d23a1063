"""The network call of `Detector`, one class per backend/precision: normalised NCHW float32 crops
in, the last stack's fp32 ``(heatmaps, residuals)`` out. Everything before (cropping,
normalisation) and after (decoding, back to image pixels) is shared by all backends.

- ``torch`` ``fp32``: the `SMTNet` module.
- ``torch`` ``bf16``: autocast to bfloat16 with channels_last weights; fast only on CPUs with
  native bf16 (AVX-512 BF16 or AMX), emulated and slow elsewhere (a warning says so). Outputs are
  cast back to fp32 before decoding.
- ``onnxruntime`` ``fp32``: the graph from `export.export_onnx`, cached by the weights' sha256.
- ``onnxruntime`` ``int8``: that graph statically quantised by `quantize.quantize_int8`.

``InferenceSession.run`` is thread-safe, and the torch module is only read, so one runner (and
one `Detector`) can serve many threads.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .models import SMTNet

BACKENDS = ("torch", "onnxruntime")
PRECISIONS = {"torch": ("fp32", "bf16"), "onnxruntime": ("fp32", "int8")}


def check_backend(backend: str, precision: str, device: torch.device) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if precision not in PRECISIONS[backend]:
        raise ValueError(f"backend {backend!r} supports precision {PRECISIONS[backend]}, got {precision!r}"
                         + (" (int8 runs on backend='onnxruntime')" if precision == "int8" else "")
                         + (" (bf16 runs on backend='torch')" if precision == "bf16" else ""))
    if backend == "onnxruntime" and device.type != "cpu":
        raise ValueError(f"backend='onnxruntime' runs on the CPU here; use device='cpu' (got {device})")


def cpu_has_native_bf16() -> bool:
    """True when the CPU has AVX-512 BF16 or AMX-BF16, where bf16 matmuls beat fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return "avx512_bf16" in flags or "amx_bf16" in flags


class TorchRunner:
    """``SMTNet`` on its device; ``bf16`` runs a channels_last copy under autocast."""

    def __init__(self, model: SMTNet, precision: str = "fp32") -> None:
        self.precision = precision
        self.device = next(model.parameters()).device
        if precision == "bf16":
            if self.device.type == "cpu" and not cpu_has_native_bf16():
                warnings.warn("this CPU has no native bf16 (AVX-512 BF16 / AMX): precision='bf16' is emulated "
                              "and slower than fp32", RuntimeWarning, stacklevel=3)
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.model = model.eval()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                heatmaps, residuals = self.model(x.contiguous(memory_format=torch.channels_last))[-1]
            return heatmaps.float().contiguous(), residuals.float()
        return self.model(x)[-1]


class OrtRunner:
    """An ONNX Runtime session on an exported graph (a path or serialised bytes). With
    ``OMP_WAIT_POLICY=PASSIVE`` in the environment its worker threads do not spin-wait either."""

    def __init__(self, graph: str | os.PathLike | bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            # ORT's own thread pool ignores OpenMP's variable; honour it so one setting stops both spinning
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph if isinstance(graph, bytes) else str(graph), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, residuals = self.session.run(None, {self.input_name: x.detach().cpu().float().numpy()})
        return torch.from_numpy(heatmaps), torch.from_numpy(residuals)


def make_runner(model: SMTNet, backend: str, precision: str, threads: int | None, weights_sha256: str | None,
                calibration=None):
    """The runner for a backend/precision. ONNX graphs are exported (and int8 ones calibrated)
    once per weights sha256 into `export.cache_dir`; a model without a sha256 is exported in memory."""
    if backend == "torch":
        return TorchRunner(model, precision)
    from .export import cached_onnx, export_onnx

    if precision == "fp32":
        graph = cached_onnx(model, weights_sha256) if weights_sha256 else export_onnx(model)
        return OrtRunner(graph, threads)
    return OrtRunner(int8_graph(model, weights_sha256, calibration), threads)


def int8_graph(model: SMTNet, weights_sha256: str | None, calibration=None) -> Path | bytes:
    """The int8 graph of ``model``: from the cache, or calibrated on ``calibration`` (folders of
    annotated training faces, or uint8 NHWC crops) and cached under the weights' sha256."""
    from .export import OPSET, cache_dir, export_onnx
    from .quantize import DEFAULT_NUM_CROPS, QUANT_SETTINGS, calibration_crops, quantize_int8, recipe_key

    cfg = model.config
    stem = f"{weights_sha256[:32]}-{cfg.name}-int8-opset{OPSET}" if weights_sha256 else None
    if calibration is None:
        found = sorted(cache_dir().glob(f"{stem}-*.onnx"), key=lambda p: p.stat().st_mtime) if stem else []
        if found:
            return found[-1]
        raise ValueError(
            "precision='int8' needs a calibrated graph: pass calibration=[folders of annotated training faces] "
            "(or uint8 crops) once, or build one with `facelandmarks-smt export --int8 --calibration DIR ...`; "
            + (f"none is cached in {cache_dir()} for these weights" if stem else
               "a model without a weights file is never cached"))
    if isinstance(calibration, np.ndarray):
        crops = calibration
        recipe = {"crops_sha256": hashlib.sha256(np.ascontiguousarray(crops).tobytes()).hexdigest(),
                  "num_crops": len(crops), **QUANT_SETTINGS}
    else:
        from .training.datasets import LandmarkDataset

        if isinstance(calibration, LandmarkDataset):
            source = calibration
            folders = sorted({str(Path(item[0]).parent.resolve()) for item in calibration.items})
        else:
            source = [calibration] if isinstance(calibration, (str, os.PathLike)) else list(calibration)
            folders = [str(Path(f).resolve()) for f in source]
        crops = None
        recipe = {"folders": folders, "num_crops": DEFAULT_NUM_CROPS, **QUANT_SETTINGS}
    path = cache_dir() / f"{stem}-{recipe_key(recipe)}.onnx" if stem else None
    if path is not None and path.is_file():
        return path
    if crops is None:
        crops, recipe = calibration_crops(source, cfg, DEFAULT_NUM_CROPS)
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"facelandmarks_smt.weights_sha256": weights_sha256} if weights_sha256 else None
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", metadata=meta)
        out = quantize_int8(fp32, path if path is not None else Path(tmp) / "int8.onnx", crops, recipe)
        return out if path is not None else out.read_bytes()


def set_torch_threads(threads: int | None) -> None:
    """torch's intra-op thread count is process-wide: the last Detector built with ``threads`` wins."""
    if threads:
        torch.set_num_threads(int(threads))


__all__: Sequence[str] = ("BACKENDS", "PRECISIONS", "TorchRunner", "OrtRunner", "make_runner", "int8_graph",
                          "cpu_has_native_bf16", "set_torch_threads")
