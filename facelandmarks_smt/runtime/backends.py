"""The network call of `Detector`, one class per backend/precision: normalised NCHW float32 crops
in, the last stack's fp32 ``(heatmaps, residuals)`` out. Everything before (cropping,
normalisation) and after (decoding, back to image pixels) is shared by all backends.

- ``torch`` ``fp32``: the `SMTNet` module.
- ``torch`` ``bf16``: autocast to bfloat16 with channels_last weights; fast only on CPUs with
  native bf16 (AVX-512 BF16 or AMX), emulated and about 5x slower than fp32 elsewhere (a warning
  says so, once per process). Outputs are cast back to fp32 before decoding.
- ``onnxruntime`` ``fp32``: the graph from `export.export_onnx`, cached by the weights' sha256.
- ``onnxruntime`` ``int8``: that graph statically quantised by `quantize.quantize_int8`, cached
  as `graphs.int8_graph` says.
- ``openvino`` ``fp32`` / ``int8`` (optional, ``pip install 'facelandmarks_smt[openvino]'``):
  OpenVINO's CPU plugin on those same two cached graphs (`openvino_backend.OpenVINORunner`; int8
  without its output re-quantisation, `quantize.float_conv_outputs`, compiled per static batch), but
  for ``int8`` of weights that ship an OpenVINO int8 model (`graphs.shipped_openvino_int8`: NNCF's
  post-training quantisation, made for this runtime), which runs instead;
  ``bf16`` only on CPUs with native bf16 (OpenVINO's bf16 inference precision on the network's
  trunk, the last heads a second OpenVINO model in fp32).

``"auto"`` (the default of `Detector` and the CLI) is resolved by `resolve_path` to one of these
from the CPU's features (`auto_path`, docs/benchmarks.md "How the default path is chosen"): openvino
bf16 where the CPU has native bf16 and openvino is installed, else torch bf16 there; onnxruntime
fp32 (or torch fp32) elsewhere.

``InferenceSession.run`` is thread-safe, the torch module is only read, and the OpenVINO runner
gives each thread its own infer request, so one runner (and one `Detector`) can serve many threads.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
import threading
import warnings
from typing import Sequence

import numpy as np
import torch

from ..codec import HeatmapDecoder
from ..models import SMTNet
from .device import cpu_has_native_bf16, torch_threads
from .export import DECODER_INPUTS, cached_onnx, export_decoder_onnx, export_onnx
from .graphs import int8_graph, shipped_int8_ranges, shipped_openvino_int8
from .openvino_backend import OpenVINORunner, check_openvino_precision, import_openvino, openvino_has_bf16
from .quantize import float_conv_outputs
from .runner import Runner, graph_decoder

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = {"torch": ("fp32", "bf16"), "onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8")}
#: Backends that run an exported ONNX graph (cached under the weights' sha256), on the CPU only.
GRAPH_BACKENDS = ("onnxruntime", "openvino")
AUTO = "auto"
ALL_PRECISIONS = ("fp32", "bf16", "int8")


def check_backend(backend: str, precision: str, device: torch.device) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS} or 'auto'")
    if precision not in PRECISIONS[backend]:
        raise ValueError(f"backend {backend!r} supports precision {PRECISIONS[backend]}, got {precision!r}"
                         + (" (int8 runs on backend='onnxruntime' or 'openvino')" if precision == "int8" else "")
                         + (" (bf16 runs on backend='torch' or 'openvino')" if precision == "bf16" else ""))
    if backend in GRAPH_BACKENDS and device.type != "cpu":
        raise ValueError(f"backend={backend!r} runs on the CPU here; use device='cpu' (got {device})")


def onnxruntime_available() -> bool:
    """Whether the onnxruntime backend can run here: ``onnxruntime`` and ``onnx`` (the export) are
    installed (both are dependencies, but an environment can lack them). Looked up without importing them."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def openvino_available() -> bool:
    """Whether the optional openvino backend can be tried here: ``openvino`` and ``onnx`` (the
    export) are installed. Looked up without importing them."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "onnx"))


def auto_path(device: torch.device, int8_ready: bool = False) -> tuple[str, str]:
    """``(backend, precision)`` that ``"auto"`` means on ``device``: the fastest measured path whose
    300-W common-set NME cost is <= 0.05 (docs/benchmarks.md, "How the default path is chosen"):

    - CUDA: torch fp32;
    - a CPU with native bf16 (AVX-512 BF16 or AMX, `device.cpu_has_native_bf16`; these CPUs also
      have VNNI int8 dot products) and the optional openvino installed: openvino int8 when
      ``int8_ready`` (the weights ship int8 ranges, `graphs.shipped_int8_ranges`: +0.025 / +0.018
      NME for small / tiny, about 1.2x faster than openvino bf16), else openvino bf16 (1.3-1.7x
      faster than torch bf16 at batch 1, within 0.01 NME of fp32); without openvino torch bf16
      (1.5-1.8x faster than fp32, within 0.01 NME);
    - other CPUs: onnxruntime fp32 when it is installed (up to 1.3x faster than torch fp32 on the
      AVX2 machine, tiny at batch 1 about even; the same NME), else torch fp32.

    int8 without native bf16 (no VNNI on the AVX2 machine measured) is never chosen: it was no faster there."""
    if device.type != "cpu":
        return "torch", "fp32"
    if cpu_has_native_bf16():
        if openvino_available():
            return ("openvino", "int8") if int8_ready else ("openvino", "bf16")
        return "torch", "bf16"
    if onnxruntime_available():
        return "onnxruntime", "fp32"
    return "torch", "fp32"


def auto_int8_possible(device: torch.device) -> bool:
    """Whether `auto_path` could choose int8 here (so that looking for shipped int8 ranges is worth it)."""
    return device.type == "cpu" and cpu_has_native_bf16() and openvino_available()


def auto_int8_ready(device: torch.device, weights_sha256: str | None) -> bool:
    """``int8_ready`` for `auto_path`: int8 could be chosen here and the weights with this sha256 ship
    int8 ranges (`graphs.shipped_int8_ranges`). What `Detector` and the benchmarks ask."""
    return weights_sha256 is not None and auto_int8_possible(device) and shipped_int8_ranges(weights_sha256) is not None


def auto_precision(backend: str, device: torch.device) -> str:
    """What ``precision="auto"`` means for an explicitly chosen backend: its fastest precision within
    the NME budget, bf16 where the CPU (and, for openvino, its plugin) runs it natively, else fp32."""
    native = device.type == "cpu" and "bf16" in PRECISIONS[backend] and cpu_has_native_bf16()
    if native and backend == "openvino":
        native = _openvino_runs_bf16()
    return "bf16" if native else "fp32"


def _openvino_runs_bf16() -> bool:
    """Whether OpenVINO's CPU plugin lists bf16 here (False when openvino cannot be imported: the
    explicit backend then fails later with its install hint)."""
    try:
        return openvino_has_bf16()
    except ImportError:
        return False


def fallback_path(backend: str, precision: str) -> tuple[str, str]:
    """The path that an automatic choice of ``(backend, precision)`` falls back to when its runtime
    is installed but fails to start here: openvino int8 -> openvino bf16 (its int8 graph could not be
    built); otherwise torch at the same precision where torch has it, else fp32."""
    if (backend, precision) == ("openvino", "int8"):
        return "openvino", "bf16"
    return "torch", precision if precision in PRECISIONS["torch"] else "fp32"


def resolve_path(backend: str, precision: str, device: torch.device, int8_ready: bool = False) -> tuple[str, str]:
    """The concrete ``(backend, precision)`` for a request in which either may be ``"auto"``, checked.

    Both ``"auto"``: `auto_path`. Only the backend ``"auto"``: the backend that runs that
    precision (torch for fp32 and bf16, as before; onnxruntime for int8). Only the precision
    ``"auto"``: bf16 on a CPU with native bf16 when the backend has it (torch, openvino), else fp32.
    Explicit choices are kept as given."""
    if backend != AUTO and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS} or 'auto'")
    if precision != AUTO and precision not in ALL_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {ALL_PRECISIONS} or 'auto'")
    if backend == AUTO and precision == AUTO:
        backend, precision = auto_path(device, int8_ready)
    elif backend == AUTO:
        backend = "torch" if precision in PRECISIONS["torch"] else "onnxruntime"
    elif precision == AUTO:
        precision = auto_precision(backend, device)
    check_backend(backend, precision, device)
    return backend, precision


_SLOW_BF16_LOCK = threading.Lock()
_slow_bf16_warned = False


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this package (the user's line that asked for it)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("facelandmarks_smt."):
        frame, level = frame.f_back, level + 1
    return level


def warn_if_slow_bf16(device: torch.device) -> bool:
    """Warn (`UserWarning`, once per process, at the caller's line outside this package) that bf16
    on this CPU is emulated, naming the faster choice; returns whether it warned."""
    global _slow_bf16_warned
    if device.type != "cpu" or cpu_has_native_bf16():
        return False
    with _SLOW_BF16_LOCK:
        if _slow_bf16_warned:
            return False
        _slow_bf16_warned = True
    backend, precision = auto_path(device)
    warnings.warn(f"this CPU has no native bf16 (AVX-512 BF16 / AMX): precision='bf16' is emulated here and "
                  f"about 5x slower than fp32; backend={backend!r}, precision={precision!r} is faster on this CPU "
                  "(what the default backend='auto', precision='auto' picks; docs/benchmarks.md)",
                  UserWarning, stacklevel=_caller_stacklevel())
    return True


class TorchRunner(Runner):
    """``SMTNet`` on its device; ``bf16`` runs a channels_last copy under autocast. With
    ``threads`` each call runs with that many torch intra-op threads and gives the caller's
    count back afterwards (`device.torch_threads`): the process-wide setting is never left changed."""

    def __init__(self, model: SMTNet, precision: str = "fp32", threads: int | None = None,
                 decoder: HeatmapDecoder | None = None) -> None:
        config = getattr(model, "config", None)  # an SMTNet carries it; any other module: pass decoder
        self.decoder = decoder or (HeatmapDecoder.from_config(config) if config is not None else None)
        self.precision = precision
        self.threads = threads
        self.device = next(model.parameters()).device
        if precision == "bf16":
            warn_if_slow_bf16(self.device)
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


class OrtRunner(Runner):
    """An ONNX Runtime session on an exported graph (a path or serialised bytes). With
    ``OMP_WAIT_POLICY=PASSIVE`` in the environment its worker threads do not spin-wait either.
    `decoded` runs the decoder's graph (`export.export_decoder_onnx`) in a second session; ``decoder``
    defaults to the one of the config stored in the graph."""

    def __init__(self, graph: str | os.PathLike | bytes, threads: int | None = None,
                 decoder: HeatmapDecoder | None = None) -> None:
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
        self.decoder = decoder or graph_decoder(graph)
        decoder_graph = None if self.decoder is None else export_decoder_onnx(self.decoder.theta, self.decoder.stride)
        # the decoder runs on the calling thread (one intra-op thread: no second pool of workers
        # spinning beside the network's, which made tiny's batch-1 detect 1.7x slower)
        dopts = ort.SessionOptions()
        dopts.intra_op_num_threads = dopts.inter_op_num_threads = 1
        self.decoder_session = None if decoder_graph is None else ort.InferenceSession(
            decoder_graph, sess_options=dopts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, residuals = self.session.run(None, {self.input_name: x.detach().cpu().float().numpy()})
        return torch.from_numpy(heatmaps), torch.from_numpy(residuals)

    def decoded(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self.decoder_session is None:
            return super().decoded(x)
        outputs = self.session.run(None, {self.input_name: x.detach().cpu().float().numpy()})
        points, scores = self.decoder_session.run(None, dict(zip(DECODER_INPUTS, outputs)))
        return np.asarray(points, np.float32), np.asarray(scores, np.float32)


def make_runner(model: SMTNet, backend: str, precision: str, threads: int | None, weights_sha256: str | None,
                calibration=None):
    """The runner for a backend/precision. ONNX graphs are exported (and int8 ones calibrated)
    once per weights sha256 into `export.cache_dir`; a model without a sha256 is exported in memory.
    onnxruntime and openvino run the same graphs (openvino's bf16: the fp32 graph with bf16 inference)."""
    if backend == "torch":
        return TorchRunner(model, precision, threads)
    decoder = HeatmapDecoder.from_config(model.config)
    if backend == "openvino":
        import_openvino()  # a missing package is named before any export work
        check_openvino_precision(precision)
    heads = []
    if backend == "openvino" and precision == "int8" and calibration is None and weights_sha256 \
            and (ir := shipped_openvino_int8(weights_sha256)) is not None:
        # weights that ship an OpenVINO int8 model (NNCF's, `training.openvino_int8`) run it: faster
        # there than the QDQ graph made for onnxruntime, at the same validation NME
        return OpenVINORunner(ir, precision, threads, decoder=decoder)
    if precision == "int8":
        graph = int8_graph(model, weights_sha256, calibration, threads)  # threads: also the calibration session's
    else:
        # openvino's bf16 runs the trunk graph in bf16 and the heads graph in fp32 (openvino_backend's docstring)
        parts = ("trunk", "heads") if backend == "openvino" and precision == "bf16" else ("full",)
        graph, *heads = (cached_onnx(model, weights_sha256, part=p) if weights_sha256 else export_onnx(model, part=p)
                         for p in parts)
    if backend == "openvino" and precision == "int8":
        # OpenVINO runs the same int8 graph without the re-quantisation of each convolution's output, which
        # it needs a static batch for (`quantize.float_conv_outputs`; docs/benchmarks.md)
        return OpenVINORunner(float_conv_outputs(graph), precision, threads, decoder=decoder, static_batch=True)
    if backend == "openvino":
        return OpenVINORunner(graph, precision, threads, heads=heads[0] if precision == "bf16" else None,
                              decoder=decoder)
    return OrtRunner(graph, threads, decoder=decoder)


def set_torch_threads(threads: int | None) -> None:
    """Set torch's process-wide intra-op thread count (kept for old callers; `Detector` no longer
    calls it: its ``threads`` apply to its own calls only, see `TorchRunner`)."""
    if threads:
        torch.set_num_threads(int(threads))


__all__: Sequence[str] = ("BACKENDS", "PRECISIONS", "AUTO", "Runner", "TorchRunner", "OrtRunner", "OpenVINORunner", "make_runner",
                          "int8_graph",
                          "cpu_has_native_bf16", "set_torch_threads", "auto_path", "resolve_path",
                          "onnxruntime_available", "openvino_available", "auto_int8_possible", "auto_int8_ready", "fallback_path", "auto_precision", "warn_if_slow_bf16")
