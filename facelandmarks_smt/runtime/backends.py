"""The network call of `Detector`, one class per backend/precision: normalised NCHW float32 crops
in, the last stack's fp32 ``(heatmaps, residuals)`` out. Everything before (cropping,
normalisation) and after (decoding, back to image pixels) is shared by all backends.

- ``torch`` ``fp32``: the `SMTNet` module.
- ``torch`` ``bf16``: autocast to bfloat16 with channels_last weights; fast only on CPUs with
  native bf16 (AVX-512 BF16 or AMX), emulated and slow elsewhere (a warning says so). Outputs are
  cast back to fp32 before decoding.
- ``onnxruntime`` ``fp32``: the graph from `export.export_onnx`, cached by the weights' sha256.
- ``onnxruntime`` ``int8``: that graph statically quantised by `quantize.quantize_int8`, cached
  as `graphs.int8_graph` says.

``InferenceSession.run`` is thread-safe, and the torch module is only read, so one runner (and
one `Detector`) can serve many threads.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Sequence

import torch

from ..models import SMTNet
from .device import cpu_has_native_bf16, torch_threads
from .export import cached_onnx, export_onnx
from .graphs import int8_graph

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


class TorchRunner:
    """``SMTNet`` on its device; ``bf16`` runs a channels_last copy under autocast. With
    ``threads`` each call runs with that many torch intra-op threads and gives the caller's
    count back afterwards (`device.torch_threads`): the process-wide setting is never left changed."""

    def __init__(self, model: SMTNet, precision: str = "fp32", threads: int | None = None) -> None:
        self.precision = precision
        self.threads = threads
        self.device = next(model.parameters()).device
        if precision == "bf16":
            if self.device.type == "cpu" and not cpu_has_native_bf16():
                warnings.warn("this CPU has no native bf16 (AVX-512 BF16 / AMX): precision='bf16' is emulated "
                              "and slower than fp32", RuntimeWarning, stacklevel=3)
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.model = model.eval()

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch_threads(self.threads):
            return self._run(x)

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        return TorchRunner(model, precision, threads)
    if precision == "fp32":
        graph = cached_onnx(model, weights_sha256) if weights_sha256 else export_onnx(model)
        return OrtRunner(graph, threads)
    return OrtRunner(int8_graph(model, weights_sha256, calibration), threads)


def set_torch_threads(threads: int | None) -> None:
    """Set torch's process-wide intra-op thread count (kept for old callers; `Detector` no longer
    calls it: its ``threads`` apply to its own calls only, see `TorchRunner`)."""
    if threads:
        torch.set_num_threads(int(threads))


__all__: Sequence[str] = ("BACKENDS", "PRECISIONS", "TorchRunner", "OrtRunner", "make_runner", "int8_graph",
                          "cpu_has_native_bf16", "set_torch_threads")
