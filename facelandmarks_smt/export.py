"""SMT-Net -> ONNX: the graph that `Detector(backend="onnxruntime")` runs, and the ``export`` CLI.

The exported graph takes normalised NCHW float32 crops ``input`` ``(N, 3, S, S)`` (dynamic N) and
returns the last stack's ``heatmaps`` ``(N, L, S/4, S/4)`` and ``residuals`` ``(N, L, 2)``, exactly
what `decode.decode_heatmaps` consumes, so pre- and post-processing stay one shared code path.
The model config travels in the ONNX metadata (``facelandmarks_smt.config``).

Graphs are exported with torch's TorchScript exporter (``dynamo=False``), which needs no extra
packages; the torch.export-based exporter is used only where the old one is gone (it needs
``onnxscript``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch

from .config import ModelConfig
from .models import SMTNet
from .weights_io import sha256_file

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = ("heatmaps", "residuals")
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


def export_onnx(model: SMTNet, out: str | os.PathLike | None = None, opset: int = OPSET,
                metadata: dict[str, str] | None = None) -> bytes | Path:
    """Export ``model`` (fp32, eval mode, on CPU) with a dynamic batch axis and check the graph.

    Returns the serialised model as bytes when ``out`` is None, else writes ``out`` and returns
    its path. The model itself is left untouched (a CPU fp32 copy is exported).
    """
    import onnx

    if not isinstance(model, SMTNet):
        raise TypeError(f"model must be an SMTNet, got {type(model).__name__}")
    cfg = model.config
    net = _LastStack(_cpu_fp32_copy(model)).eval()
    x = torch.zeros(2, 3, cfg.input_size, cfg.input_size)
    axes = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation and traces the input-shape check.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=axes, do_constant_folding=True)
        except TypeError:  # a torch without the TorchScript exporter
            torch.onnx.export(net, (x,), buf, dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=axes)
    proto = onnx.load_from_string(buf.getvalue())
    meta = {"facelandmarks_smt.config": cfg.to_json(), "facelandmarks_smt.export_version": str(EXPORT_VERSION),
            "facelandmarks_smt.opset": str(opset), **(metadata or {})}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if out is None:
        return data
    return _atomic_write(Path(out), data)


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


def cached_onnx(model: SMTNet, weights_sha256: str, opset: int = OPSET, directory: str | os.PathLike | None = None) -> Path:
    """The fp32 graph of ``model`` (loaded from weights with that sha256), exported once and cached."""
    directory = Path(directory) if directory is not None else cache_dir()
    path = directory / f"{weights_sha256[:32]}-{model.config.name}-fp32-opset{opset}-v{EXPORT_VERSION}.onnx"
    if not path.is_file():
        export_onnx(model, path, opset=opset, metadata={"facelandmarks_smt.weights_sha256": weights_sha256})
    return path


def export(weights: str | os.PathLike, out: str | os.PathLike, opset: int = OPSET, int8: bool = False,
           calibration: list[str] | None = None, num_calibration: int | None = None) -> dict:
    """Export a weights file (or a registered pretrained name) to ``out``; with ``int8`` the
    graph is statically quantised on crops of the ``calibration`` folders (see `quantize`).
    Returns a summary dict (path, sha256, opset, precision)."""
    from . import hub
    from .weights_io import load_model

    path, expected = hub.resolve(weights)
    model, _ = load_model(path, sha256=expected)
    sha = sha256_file(path)
    meta = {"facelandmarks_smt.weights_sha256": sha}
    out = Path(out)
    if int8:
        from .quantize import DEFAULT_NUM_CROPS, calibration_crops, quantize_int8

        if not calibration:
            raise ValueError("int8 export needs --calibration folders of annotated training faces")
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", opset=opset, metadata=meta)
            crops, recipe = calibration_crops(calibration, model.config, num_calibration or DEFAULT_NUM_CROPS)
            quantize_int8(fp32, out, crops, recipe)
    else:
        export_onnx(model, out, opset=opset, metadata=meta)
    return {"out": str(out), "sha256": sha256_file(out), "opset": opset, "precision": "int8" if int8 else "fp32",
            "weights": str(path), "weights_sha256": sha}


def _cpu_fp32_copy(model: SMTNet) -> SMTNet:
    clone = SMTNet(model.config)
    clone.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()})
    return clone.eval()


def _atomic_write(path: Path, data: bytes) -> Path:
    """Write then rename, so concurrent processes never read a half-written cache entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# -- CLI glue (wired into facelandmarks_smt.cli by the lead) -----------------------------------
def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``export --weights W --out model.onnx [--opset N] [--int8 --calibration DIR...]``."""
    from .cli import HelpFormatter  # shows each default once

    p = subparsers.add_parser("export", help="export weights to an ONNX graph (fp32, or int8 with calibration)",
                              description=export.__doc__, formatter_class=HelpFormatter)
    p.add_argument("--weights", required=True, help="a .safetensors file or a registered pretrained name")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=OPSET, help="ONNX opset")
    p.add_argument("--int8", action="store_true", help="static int8 quantisation (QDQ, per-channel weights)")
    p.add_argument("--calibration", nargs="+", metavar="DIR",
                   help="folders of images + .pts (training data) to calibrate int8 activations on")
    p.add_argument("--num-calibration", type=int, default=None, help="number of calibration crops")
    p.set_defaults(func=run_export)
    return p


def run_export(args: argparse.Namespace) -> int:
    summary = export(args.weights, args.out, opset=args.opset, int8=args.int8, calibration=args.calibration,
                     num_calibration=args.num_calibration)
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m facelandmarks_smt.export --weights W --out model.onnx``."""
    parser = argparse.ArgumentParser(prog="python -m facelandmarks_smt.export")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_parser(sub)
    args = parser.parse_args(["export", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
