"""The weights file format: one ``.safetensors`` file whose metadata holds the model config.

A file alone rebuilds its model (architecture, landmark count, crop factor, normalisation, theta,
scheme, training-data licence). Loading checks the file before trusting it: existence, optional
sha256, readable safetensors, a config, the checksum of the tensors stored when the file was saved
(``tensors_sha256``; files written before it existed load without it), tensors matching the
architecture exactly, and every tensor finite (a NaN weight would otherwise give NaN landmarks and
scores without any error).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .config import ModelConfig
from .fileio import atomic_write, sha256_file

FORMAT_NAME = "facelandmarks_smt"
FORMAT_VERSION = "1"
#: Metadata key of the checksum over the stored tensors (names, dtypes, shapes and bytes).
TENSORS_SHA256 = "tensors_sha256"

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "TENSORS_SHA256", "sha256_file", "tensors_sha256", "save_weights",
           "read_metadata", "load_weights", "load_model", "check_state_dict"]


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors as stored: each name, dtype, shape and raw bytes, in name order.
    Catches a flipped bit anywhere in the weights, which the finite check alone would miss."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_weights(
    model_or_state: torch.nn.Module | Mapping[str, torch.Tensor],
    config: ModelConfig,
    path: str | os.PathLike,
    metadata: Mapping[str, Any] | None = None,
    half: bool = False,
) -> str:
    """Write weights + config (+ free-form JSON-able ``metadata``) and return the file's sha256.

    ``half=True`` stores floating tensors as fp16 (BatchNorm statistics too; they load back to
    fp32). Only tensors are stored, never pickles, with their checksum (`tensors_sha256`) in the
    metadata. The file gets ordinary permissions (0o666 less the umask, like any file the user
    writes), written to a temporary name unique to this writer and renamed into place.
    """
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    tensors = {}
    for k, v in state.items():
        v = v.detach().to("cpu")
        if half and v.is_floating_point():
            v = v.half()
        tensors[k] = v.contiguous()
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": config.to_json()}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    meta[TENSORS_SHA256] = tensors_sha256(tensors)
    # safetensors' save_file creates its file 0o600; writing its bytes ourselves honours the umask.
    path = atomic_write(path, safetensors_bytes(tensors, metadata=meta))
    return sha256_file(path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors header metadata, with clear errors for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"weights file {path} is corrupt or not a safetensors file: {e}") from None


def load_weights(
    path: str | os.PathLike,
    num_landmarks: int | None = None,
    sha256: str | None = None,
) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Read and check a weights file: ``(config, float32 state_dict, metadata)``.

    ``num_landmarks`` rejects a file made for another landmark count; ``sha256`` rejects a file
    that is not byte-identical to the published one.
    """
    path = Path(path)
    meta = read_metadata(path)
    if sha256 is not None:
        actual = sha256_file(path)
        if actual.lower() != sha256.lower():
            raise ValueError(f"weights file {path} has sha256 {actual}, expected {sha256}")
    if meta.get("format") != FORMAT_NAME or "config" not in meta:
        raise ValueError(f"weights file {path} holds no facelandmarks_smt model config in its metadata")
    config = ModelConfig.from_json(meta["config"])
    if num_landmarks is not None and config.num_landmarks != num_landmarks:
        raise ValueError(
            f"weights file {path} predicts {config.num_landmarks} landmarks, but {num_landmarks} were asked for")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"weights file {path} is corrupt or truncated: {e}") from None
    stored = meta.get(TENSORS_SHA256)
    if stored is not None and tensors_sha256(state) != stored:
        raise ValueError(f"weights file {path} is corrupt: its tensors do not match the checksum stored when "
                         f"it was saved ({TENSORS_SHA256}); re-download or re-export it")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    check_state_dict(_shapes_of(config), state, source=f"weights file {path}")
    return config, state, meta


def _shapes_of(config: ModelConfig) -> torch.nn.Module:
    """The model a config describes, on the meta device: its tensor names and shapes, no memory."""
    from .models import SMTNet

    with torch.device("meta"):
        return SMTNet(config)


def load_model(path: str | os.PathLike, num_landmarks: int | None = None, sha256: str | None = None):
    """Build an `SMTNet` from a weights file (eval mode, CPU), checking every tensor fits."""
    from .models import SMTNet

    config, state, meta = load_weights(path, num_landmarks=num_landmarks, sha256=sha256)
    model = SMTNet(config)
    model.load_state_dict(state)
    return model.eval(), meta


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Raise ValueError naming missing, unexpected, mis-shaped or non-finite (NaN/inf) tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match the model config: missing {len(missing)} tensors {missing[:5]}, "
            f"unexpected {len(unexpected)} tensors {unexpected[:5]}")
    bad = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
           for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"{source} has tensors of the wrong shape: {bad[:5]}")
    not_finite = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not_finite:
        raise ValueError(f"{source} is corrupt: {len(not_finite)} tensors hold NaN or inf values: "
                         f"{not_finite[:5]}")
