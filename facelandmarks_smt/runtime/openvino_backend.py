"""The OpenVINO backend (``Detector(backend="openvino")``, optional: ``pip install
'facelandmarks_smt[openvino]'``): OpenVINO's CPU plugin compiles the project's own ONNX graphs,
the same files the onnxruntime backend runs (the cached fp32 export of `export.cached_onnx`, the
cached QDQ int8 graph of `graphs.int8_graph`), so there is one exporter and one cache.

Compile settings (`compile_config`):

- ``PERFORMANCE_HINT`` ``LATENCY``: one stream, all threads on one request (batch 1 first);
- ``INFERENCE_NUM_THREADS`` from the detector's ``threads`` (unset: OpenVINO's choice, the
  physical cores);
- ``INFERENCE_PRECISION_HINT``: ``f32`` for ``fp32`` *and* ``int8``. Left unset, OpenVINO runs
  float layers in bf16 on CPUs with AVX-512 BF16 or AMX, so ``precision="fp32"`` would silently
  not be fp32 there (and the int8 graph's fp32 heads, kept fp32 for accuracy, would become bf16).
  ``bf16`` asks for OpenVINO's bf16 and is accepted only where the CPU has native bf16
  (`device.cpu_has_native_bf16`) *and* OpenVINO's CPU plugin lists ``BF16`` among its
  capabilities; elsewhere OpenVINO would ignore the hint and run fp32, so it is a ``ValueError``
  (unlike torch, which emulates bf16 slowly and warns). OpenVINO's bf16 has no way to keep single
  layers in fp32, and the heatmap head in bf16 moves the argmax (300-W common set: +0.09 NME for
  tiny, +0.10 for small), so bf16 compiles the *trunk* graph (`export.export_onnx(part="trunk")`)
  in bf16 and the last stack's heads (``part="heads"``) as a second model in fp32, as torch's bf16
  autocast keeps them: +0.002 / -0.000 NME. Both run on OpenVINO's threads: the heads in torch (as
  first built) ran at the detector's thread count inside every call, which woke torch's OpenMP
  workers, whose spin-wait then slowed OpenVINO's next call even in a process that keeps torch at
  one thread, as the CLI does (tiny, batch 1, with the decoding, torch at one thread: 16.0 -> 13.0
  ms/face; docs/benchmarks.md).

int8 runs the cached QDQ graph without the re-quantisation of each convolution's output (made for
onnxruntime's fused kernels, a FakeQuantize + Convert pair per convolution here), derived in memory
by `quantize.float_conv_outputs`; OpenVINO 2026.4.1 computes that graph correctly only when its batch
is static, so it is compiled per batch size (``static_batch``; docs/benchmarks.md).

`OpenVINORunner.decoded` runs the decoding (`codec.HeatmapDecoder`, its graph from
`export.export_decoder_onnx`) as one more compiled fp32 model right after the network, its inputs
the network's output tensors in place: no heatmaps go through Python (tiny, batch 1: see
docs/benchmarks.md, "Decoding inside the runtime").

A compiled model is shared; each thread gets its own ``InferRequest`` (an infer request is not
safe to use from two threads at once), so one runner, and one `Detector`, can serve many threads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from ..codec import HeatmapDecoder
from .device import cpu_has_native_bf16
from .export import DECODER_INPUTS, DECODER_OUTPUTS, PART_INPUTS, PART_OUTPUTS, export_decoder_onnx
from .runner import Runner, graph_decoder

INSTALL_HINT = "pip install 'facelandmarks_smt[openvino]'"
#: OpenVINO's name of each precision's ``INFERENCE_PRECISION_HINT``.
PRECISION_HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}

_CORE_LOCK = threading.Lock()
_core = None


def import_openvino():
    """The ``openvino`` module, or an ImportError that says how to install it."""
    try:
        import openvino
    except ImportError as e:
        raise ImportError(f"backend='openvino' needs the OpenVINO runtime, which is not installed: {INSTALL_HINT} "
                          f"(or pip install openvino) ({e})") from e
    return openvino


def openvino_core():
    """One ``openvino.Core`` per process (made on first use)."""
    global _core
    if _core is None:
        ov = import_openvino()
        with _CORE_LOCK:
            if _core is None:
                _core = ov.Core()
    return _core


def openvino_has_bf16(core=None) -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (``BF16`` in its optimisation capabilities)."""
    core = core or openvino_core()
    try:
        return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # an old plugin without the property: assume not
        return False


def check_openvino_precision(precision: str, core=None) -> None:
    """Raise ValueError for a precision OpenVINO cannot honour on this CPU (bf16 without native support)."""
    if precision not in PRECISION_HINTS:
        raise ValueError(f"backend='openvino' supports precision {tuple(PRECISION_HINTS)}, got {precision!r}")
    if precision == "bf16" and not (cpu_has_native_bf16() and openvino_has_bf16(core)):
        raise ValueError("precision='bf16' with backend='openvino' needs a CPU with native bf16 (AVX-512 BF16 or "
                         "AMX); this one has none, and OpenVINO would silently run fp32: use precision='fp32' "
                         "(or backend='torch', precision='bf16', emulated and about 5x slower)")


def compile_config(precision: str, threads: int | None) -> dict[str, str]:
    """The ``compile_model`` settings of a precision and thread count (see the module docstring)."""
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(int(threads))
    return config


def _compile(core, graph, config: dict[str, str], part: str):
    """``graph`` (a path or serialised ONNX bytes) compiled for the CPU, checked to be that part."""
    compiled = core.compile_model(core.read_model(graph) if isinstance(graph, bytes) else str(Path(graph)), "CPU",
                                  config)
    _check_part(compiled, part)
    return compiled


def _check_part(compiled, part: str) -> None:
    """Raise ValueError unless a compiled model has the inputs and outputs of that part of the network."""
    names = ({n for port in compiled.inputs for n in port.get_names()},
             {n for port in compiled.outputs for n in port.get_names()})
    if part == "decoded":  # the network with the decoder (`with_decoder`)
        want = (set(PART_INPUTS["full"]), set(DECODER_OUTPUTS))
        if not (want[0] <= names[0] and want[1] <= names[1]):
            raise ValueError(f"the network with its decoder has inputs {sorted(names[0])} / outputs {sorted(names[1])}")
        return
    want = (set(PART_INPUTS[part]), set(PART_OUTPUTS[part]))
    if not (want[0] <= names[0] and want[1] <= names[1]):
        hint = {"full": "pass the full graph, or the trunk graph with heads",
                "trunk": "pass the trunk graph (export_onnx(part='trunk')) with heads",
                "heads": "pass the heads graph (export_onnx(part='heads')) as heads"}[part]
        raise ValueError(f"the graph's inputs {sorted(names[0])} / outputs {sorted(names[1])} are not the "
                         f"{part} graph's {list(PART_INPUTS[part])} / {list(PART_OUTPUTS[part])}: {hint}")


def with_decoder(graph: str | os.PathLike | bytes, decoder_graph: bytes) -> bytes:
    """The full network graph and the decoder's graph (`export.export_decoder_onnx`) as one ONNX model:
    crops in, ``points`` and ``scores`` out. One OpenVINO call instead of two, and the heatmaps never
    leave the runtime (tiny, batch 1, hot loop: about 0.3-0.5 ms less; docs/benchmarks.md)."""
    import onnx
    from onnx import compose

    net = onnx.load_model_from_string(graph) if isinstance(graph, bytes) else onnx.load(str(graph))
    dec = onnx.load_model_from_string(decoder_graph)
    dec.ir_version = net.ir_version
    dec = compose.add_prefix(dec, "decoder/", rename_outputs=False)
    return compose.merge_models(net, dec, io_map=[(name, f"decoder/{name}") for name in DECODER_INPUTS],
                                outputs=list(DECODER_OUTPUTS)).SerializeToString()


class OpenVINORunner(Runner):
    """An OpenVINO CPU compiled model of an exported graph (an ONNX or OpenVINO IR path, or ONNX bytes):
    normalised NCHW float32 crops in, fp32 ``(heatmaps, residuals)`` out, as the other runners.
    With ``heads`` (the heads graph, `export.export_onnx(part="heads")`) the graph is the trunk,
    compiled at ``precision``, and the heads a second model compiled in fp32. ``decoder`` (default:
    the one of the config an ONNX graph carries) is compiled in fp32 too, for `decoded`.
    ``static_batch``: compile the graph for fixed batch sizes instead of a dynamic batch, 1 at once and
    each further power of two on first use (a call of 13 faces runs 8 + 4 + 1); the int8 graph with float
    convolution outputs (`quantize.float_conv_outputs`) is computed wrongly by OpenVINO 2026.4.1 with a
    dynamic batch and correctly with a static one (tests/test_openvino.py)."""

    def __init__(self, graph: str | os.PathLike | bytes, precision: str = "fp32", threads: int | None = None,
                 heads: str | os.PathLike | bytes | None = None, decoder: HeatmapDecoder | None = None,
                 static_batch: bool = False) -> None:
        core = openvino_core()
        check_openvino_precision(precision, core)
        self.precision, self.threads, self.static_batch = precision, threads, bool(static_batch)
        self.config = compile_config(precision, threads)
        if self.static_batch and heads is not None:
            raise ValueError("static_batch compiles the full graph per batch size; it takes no heads graph")
        self._compile_lock = threading.Lock()
        self._static: dict[tuple[str, int], object] = {}  # (kind, batch) -> compiled model, `_compiled_for`
        self.decoder = decoder or graph_decoder(graph)
        decoder_graph = None if self.decoder is None else export_decoder_onnx(self.decoder.theta, self.decoder.stride)
        if self.static_batch:
            self._models = {"network": core.read_model(graph) if isinstance(graph, bytes) else core.read_model(str(Path(graph)))}
            if decoder_graph is not None:  # network and decoding as one model: one call, no heatmaps handed over
                self._models["decoded"] = core.read_model(with_decoder(graph, decoder_graph))
            # compiled now (errors show at construction, batch 1 is ready): what `Detector` calls
            self.compiled = self._compiled_for(1, "decoded" if decoder_graph is not None else "network")
        else:
            self.compiled = _compile(core, graph, self.config, "full" if heads is None else "trunk")
        self.compiled_heads = None if heads is None else _compile(core, heads, compile_config("fp32", threads), "heads")
        self.compiled_decoder = None if decoder_graph is None or self.static_batch else core.compile_model(
            core.read_model(decoder_graph), "CPU", compile_config("fp32", threads))
        self._local = threading.local()

    def _compiled_for(self, batch: int, kind: str = "network"):
        """The ``kind`` model (``"network"``: heatmaps and residuals; ``"decoded"``: the network with the
        decoder, points and scores) compiled for a static batch of ``batch`` (on first use, then kept)."""
        compiled = self._static.get((kind, batch))
        if compiled is None:
            with self._compile_lock:
                compiled = self._static.get((kind, batch))
                if compiled is None:
                    model = self._models[kind].clone()
                    dims = list(model.inputs[0].get_partial_shape())[1:]  # (3, S, S): static in every export
                    model.reshape({model.inputs[0]: [batch, *(d.get_length() for d in dims)]})
                    compiled = openvino_core().compile_model(model, "CPU", self.config)
                    _check_part(compiled, "full" if kind == "network" else "decoded")
                    self._static[(kind, batch)] = compiled
        return compiled

    def _request(self, compiled=None):
        """This thread's infer request of ``compiled`` (default: the main graph)."""
        compiled = compiled or self.compiled
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        request = requests.get(id(compiled))
        if request is None:
            request = requests[id(compiled)] = compiled.create_infer_request()
        return request

    def _network(self, x: np.ndarray, share_outputs: bool):
        """The network's outputs (by name) for crops ``x`` (float32 NCHW numpy); with ``share_outputs``
        they are this thread's request's own buffers, valid until its next call."""
        # share_inputs: no copy of the crops (the array outlives the synchronous call)
        if self.static_batch:
            return self._request(self._compiled_for(len(x))).infer({0: x}, share_inputs=True,
                                                                   share_outputs=share_outputs)
        if self.compiled_heads is not None:
            # the trunk's outputs are read in place: the heads consume them before this thread's
            # trunk request runs again
            trunk = self._request().infer({0: x}, share_inputs=True, share_outputs=True)
            return self._request(self.compiled_heads).infer({name: trunk[name] for name in PART_INPUTS["heads"]},
                                                            share_inputs=True, share_outputs=share_outputs)
        return self._request().infer({0: x}, share_inputs=True, share_outputs=share_outputs)

    def _output_shape(self, name: str, kind: str = "network") -> list[int]:
        compiled = self._compiled_for(1, kind) if self.static_batch else self.compiled
        return list(next(port for port in compiled.outputs if name in port.get_names()).get_shape())

    def _chunks(self, x: torch.Tensor) -> list[np.ndarray]:
        """``x`` as float32 NCHW numpy, in one piece, or with ``static_batch`` in pieces whose sizes are
        powers of two (largest first: 13 faces run as 8 + 4 + 1), so that a few compiled batch sizes
        serve every count of faces."""
        x = x.detach().cpu().float().contiguous().numpy()
        if not self.static_batch or (len(x) & (len(x) - 1) == 0 and len(x) > 0):
            return [x]
        chunks, start = [], 0
        while start < len(x):
            size = 1 << ((len(x) - start).bit_length() - 1)
            chunks.append(x[start:start + size])
            start += size
        return chunks

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # outputs are copied (share_outputs=False), so a later call on this thread's request cannot change them
        outs = [self._network(chunk, share_outputs=False) for chunk in self._chunks(x)]
        if not outs:  # no crops with static batches: empty outputs of the network's shapes
            return tuple(torch.zeros((0, *self._output_shape(name)[1:])) for name in PART_OUTPUTS["full"])
        return tuple(torch.from_numpy(np.concatenate([out[name] for out in outs]) if len(outs) > 1 else outs[0][name])
                     for name in PART_OUTPUTS["full"])

    def decoded(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self.static_batch and "decoded" in self._models:
            parts = []
            for chunk in self._chunks(x):
                out = self._request(self._compiled_for(len(chunk), "decoded")).infer(
                    {0: chunk}, share_inputs=True, share_outputs=False)
                parts.append(tuple(np.asarray(out[name], dtype=np.float32) for name in DECODER_OUTPUTS))
            return self._joined(parts)
        if self.compiled_decoder is None:
            return super().decoded(x)
        parts = []
        for chunk in self._chunks(x):
            # the network's outputs are read in place by the decoder, which runs before this thread's
            # network request runs again; the decoder's small outputs are copied
            out = self._network(chunk, share_outputs=True)
            dec = self._request(self.compiled_decoder).infer({name: out[name] for name in DECODER_INPUTS},
                                                             share_inputs=True, share_outputs=False)
            parts.append(tuple(np.asarray(dec[name], dtype=np.float32) for name in DECODER_OUTPUTS))
        return self._joined(parts)

    def _joined(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """The decoded chunks as one ``(points, scores)``."""
        if len(parts) == 1:
            return parts[0]
        if not parts:  # no crops (only the static merged path gets here): the shape of its points output
            landmarks = self._output_shape(DECODER_OUTPUTS[0], "decoded")[1]
            return np.zeros((0, landmarks, 2), np.float32), np.zeros((0, landmarks), np.float32)
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(DECODER_OUTPUTS)))


__all__ = ["OpenVINORunner", "with_decoder", "import_openvino", "openvino_core", "openvino_has_bf16", "check_openvino_precision",
           "compile_config", "INSTALL_HINT", "PRECISION_HINTS"]
