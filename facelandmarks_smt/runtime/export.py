"""SMT-Net -> ONNX: the graph that `Detector(backend="onnxruntime")` runs, and its cache folder.

The exported graph takes normalised NCHW float32 crops ``input`` ``(N, 3, S, S)`` (dynamic N) and
returns the last stack's ``heatmaps`` ``(N, L, S/4, S/4)`` and ``residuals`` ``(N, L, 2)``, exactly
what `codec.decode_heatmaps` consumes, so pre- and post-processing stay one shared code path.
The model config travels in the ONNX metadata (``facelandmarks_smt.config``).

``part="trunk"`` exports all of the network but the last stack's heads (`SMTNet.trunk`: outputs
``features`` and ``centre``) and ``part="heads"`` those heads alone (`SMTNet.last_heads`: inputs
``features`` and ``centre``, outputs ``heatmaps`` and ``residuals``), for OpenVINO's bf16, which
cannot keep single layers in fp32: it compiles the trunk in bf16 and the heads as a second, fp32
model, as torch's bf16 autocast keeps them fp32.

`export_decoder_onnx` exports the decoding (`codec.HeatmapDecoder`: argmax, residual, confidence,
crop pixels) as a small graph of its own, which the graph runtimes run right after the network.

Graphs are exported with torch's TorchScript exporter (``dynamo=False``), which needs no extra
packages; the torch.export-based exporter is used only where the old one is gone (it needs
``onnxscript``), and then with a `RuntimeWarning` saying so, never silently.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from pathlib import Path

import torch

from ..codec import HeatmapDecoder
from ..config import ModelConfig
from ..fileio import atomic_write
from ..models import SMTNet

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = ("heatmaps", "residuals")
#: The graph parts `export_onnx` makes, their inputs and their outputs.
PART_INPUTS = {"full": (INPUT_NAME,), "trunk": (INPUT_NAME,), "heads": ("features", "centre")}
PART_OUTPUTS = {"full": OUTPUT_NAMES, "trunk": ("features", "centre"), "heads": OUTPUT_NAMES}
#: Bumped whenever the exported graph changes for the same weights, so caches do not go stale.
EXPORT_VERSION = 1


class _LastStack(torch.nn.Module):
    """The network's last ``(heatmaps, residuals)`` only: earlier stacks are training-time outputs."""

    def __init__(self, model: SMTNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, residuals = self.model(x)[-1]
        return heatmaps, residuals


class _Trunk(torch.nn.Module):
    """`SMTNet.trunk`: the last stack's ``(features, centre)``, before its heads."""

    def __init__(self, model: SMTNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.trunk(x)


class _LastHeads(torch.nn.Module):
    """`SMTNet.last_heads`: the trunk's ``(features, centre)`` to the last ``(heatmaps, residuals)``."""

    def __init__(self, model: SMTNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.last_heads(features, centre)


def export_onnx(model: SMTNet, out: str | os.PathLike | None = None, opset: int = OPSET,
                metadata: dict[str, str] | None = None, part: str = "full") -> bytes | Path:
    """Export ``model`` (fp32, eval mode, on CPU) with a dynamic batch axis and check the graph.

    ``part``: ``"full"`` (the last stack's heatmaps and residuals), ``"trunk"`` (all but the last
    heads) or ``"heads"`` (the last heads alone, see the module docstring). Returns the serialised model as bytes when ``out`` is None,
    else writes ``out`` and returns its path. The model itself is left untouched (a CPU fp32 copy is
    exported).
    """
    import onnx

    if not isinstance(model, SMTNet):
        raise TypeError(f"model must be an SMTNet, got {type(model).__name__}")
    if part not in PART_OUTPUTS:
        raise ValueError(f"part must be one of {tuple(PART_OUTPUTS)}, got {part!r}")
    cfg = model.config
    input_names, output_names = PART_INPUTS[part], PART_OUTPUTS[part]
    net = {"full": _LastStack, "trunk": _Trunk, "heads": _LastHeads}[part](_cpu_fp32_copy(model)).eval()
    x = (torch.zeros(2, 3, cfg.input_size, cfg.input_size),)
    if part == "heads":  # the heads' inputs are the trunk's outputs, whatever their shapes
        with torch.no_grad():
            x = tuple(t.contiguous() for t in net.model.trunk(x[0]))
    axes = {name: {0: "batch"} for name in input_names + output_names}
    buf = io.BytesIO()
    no_torchscript = None
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation and traces the input-shape check.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, x, buf, dynamo=False, opset_version=opset, input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=axes, do_constant_folding=True)
        except TypeError as e:  # a torch without the TorchScript exporter
            no_torchscript = e
    if no_torchscript is not None:
        warnings.warn(f"torch {torch.__version__} has no TorchScript ONNX exporter ({no_torchscript}); exporting "
                      "with the torch.export-based exporter instead (needs onnxscript; the graph may differ)",
                      RuntimeWarning, stacklevel=2)
        buf = io.BytesIO()
        torch.onnx.export(net, x, buf, dynamo=True, opset_version=opset, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=axes)
    proto = onnx.load_from_string(buf.getvalue())
    meta = {"facelandmarks_smt.config": cfg.to_json(), "facelandmarks_smt.export_version": str(EXPORT_VERSION),
            "facelandmarks_smt.opset": str(opset), "facelandmarks_smt.part": part, **(metadata or {})}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if out is None:
        return data
    return atomic_write(out, data)


DECODER_INPUTS = OUTPUT_NAMES
DECODER_OUTPUTS = ("points", "scores")


@functools.lru_cache(maxsize=8)
def export_decoder_onnx(theta: float, stride: int, opset: int = OPSET) -> bytes | None:
    """The decoding of `codec.HeatmapDecoder` ``(heatmaps, residuals) -> (points, scores)`` as a
    serialised ONNX graph, every axis dynamic (any batch, landmark count and heatmap size), exported
    once per process and ``(theta, stride)``. It is traced from the same code that decodes in torch
    (`codec.decode_heatmaps`), so the two cannot drift; tests/test_decoder_graph.py checks them equal.
    None where torch has no TorchScript exporter (the runners then decode in torch)."""
    decoder = HeatmapDecoder(theta, stride).eval()
    example = (torch.rand(2, 5, 8, 8), torch.rand(2, 5, 2))
    axes = {"heatmaps": {0: "batch", 1: "landmarks", 2: "height", 3: "width"},
            "residuals": {0: "batch", 1: "landmarks"}, "points": {0: "batch", 1: "landmarks"},
            "scores": {0: "batch", 1: "landmarks"}}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        try:
            torch.onnx.export(decoder, example, buf, dynamo=False, opset_version=opset,
                              input_names=list(DECODER_INPUTS), output_names=list(DECODER_OUTPUTS),
                              dynamic_axes=axes, do_constant_folding=True)
        except TypeError:  # a torch without the TorchScript exporter: the runners decode in torch
            return None
    return buf.getvalue()


def onnx_config(model: str | os.PathLike | bytes) -> ModelConfig:
    """The `ModelConfig` stored in an exported graph's metadata."""
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    if "facelandmarks_smt.config" not in meta:
        raise ValueError("this ONNX model was not exported by facelandmarks_smt (no config in its metadata)")
    return ModelConfig.from_json(meta["facelandmarks_smt.config"])


def cache_dir() -> Path:
    """Where exported and quantised graphs are cached: ``$FACELANDMARKS_SMT_CACHE`` or
    ``~/.cache/facelandmarks_smt/onnx``."""
    env = os.environ.get("FACELANDMARKS_SMT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facelandmarks_smt" / "onnx"


def cached_onnx(model: SMTNet, weights_sha256: str, opset: int = OPSET, directory: str | os.PathLike | None = None,
                part: str = "full") -> Path:
    """The fp32 graph of ``model`` (loaded from weights with that sha256), exported once and cached;
    ``part`` as in `export_onnx` (the part is in the file name, so the two never mix)."""
    directory = Path(directory) if directory is not None else cache_dir()
    kind = "fp32" if part == "full" else f"{part}-fp32"
    path = directory / f"{weights_sha256[:32]}-{model.config.name}-{kind}-opset{opset}-v{EXPORT_VERSION}.onnx"
    if not path.is_file():
        export_onnx(model, path, opset=opset, metadata={"facelandmarks_smt.weights_sha256": weights_sha256}, part=part)
    return path


def _cpu_fp32_copy(model: SMTNet) -> SMTNet:
    clone = SMTNet(model.config)
    clone.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()})
    return clone.eval()
