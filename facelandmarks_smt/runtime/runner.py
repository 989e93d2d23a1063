"""What every runner (`backends.TorchRunner`, `backends.OrtRunner`, `openvino_backend.OpenVINORunner`)
is: ``runner(x)`` is the network call, normalised NCHW float32 crops in, the last stack's fp32
``(heatmaps, residuals)`` out; ``runner.decoded(x)`` adds the decoding (`codec.HeatmapDecoder`) and
returns what inference needs, crop-pixel points ``(N, L, 2)`` and confidences ``(N, L)`` as float32
numpy. The graph runtimes override `Runner.decoded` to run the decoder's exported graph right after
the network, inside the runtime; the default decodes in torch."""

from __future__ import annotations

import os

import numpy as np
import torch

from ..codec import HeatmapDecoder
from .export import onnx_config


class Runner:
    """The base of the runners: the shared `decoded` (in torch) over the subclass's ``__call__``."""

    decoder: HeatmapDecoder | None

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def decoded(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Crop-pixel points ``(N, L, 2)`` and confidences ``(N, L)``, float32 numpy."""
        if self.decoder is None:
            raise ValueError(f"{type(self).__name__} has no decoder: its graph carries no facelandmarks_smt model "
                             "config; pass decoder=HeatmapDecoder.from_config(config)")
        heatmaps, residuals = self(x)
        with torch.inference_mode():
            points, scores = self.decoder(heatmaps, residuals)
        return as_float32_numpy(points), as_float32_numpy(scores)


def graph_decoder(graph: str | os.PathLike | bytes) -> HeatmapDecoder | None:
    """The decoder of the model config an exported ONNX graph carries in its metadata, or None (an
    OpenVINO IR, a graph from elsewhere)."""
    if not isinstance(graph, bytes) and str(graph).lower().endswith(".xml"):
        return None
    try:
        return HeatmapDecoder.from_config(onnx_config(graph))
    except Exception:  # no metadata, or not an ONNX file: the caller passes a decoder, or decoded() says so
        return None


def as_float32_numpy(t: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy-if-needed of a tensor on any device."""
    return np.asarray(t.detach().float().cpu().numpy(), dtype=np.float32)


__all__ = ["Runner", "as_float32_numpy", "graph_decoder"]
