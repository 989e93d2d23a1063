"""Heatmaps + residuals -> landmark coordinates and confidences (batched, on the model's device).

Decoding is argmax + clamped residual (SPEC.md): the residual head predicts the sub-pixel
offset of each landmark from its heatmap's argmax; clamping to [-theta, theta] is the inference
form of the hinge loss it was trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CONFIDENCE_WINDOW = 5


def heatmap_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Integer ``(x, y)`` of each heatmap's maximum, ``(B, L, H, W) -> (B, L, 2)`` float."""
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, L, H, W), got shape {tuple(heatmaps.shape)}")
    w = heatmaps.shape[-1]
    idx = heatmaps.flatten(2).argmax(dim=-1)
    return torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(torch.float32)


def heatmap_confidence(heatmaps: torch.Tensor, peaks: torch.Tensor, window: int = CONFIDENCE_WINDOW) -> torch.Tensor:
    """Per-landmark confidence in [0, 1]: the spatial-softmax mass in a ``window``-pixel square
    around the peak. A sharp single peak scores near 1, a flat or multi-modal map near 0."""
    b, l, h, w = heatmaps.shape
    prob = torch.softmax(heatmaps.float().flatten(2), dim=-1).view(b * l, 1, h, w)
    mass = F.avg_pool2d(prob, window, stride=1, padding=window // 2, count_include_pad=True) * window ** 2
    mass = mass.view(b, l, h * w)
    idx = (peaks[..., 1].long() * w + peaks[..., 0].long()).unsqueeze(-1)
    return mass.gather(-1, idx).squeeze(-1).clamp_(0.0, 1.0)


def decode_heatmaps(heatmaps: torch.Tensor, residuals: torch.Tensor | None, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks in heatmap pixels ``(B, L, 2)`` and confidences ``(B, L)``.

    ``t = argmax + clamp(residual, -theta, theta)``; ``residuals=None`` decodes the argmax alone.
    """
    peaks = heatmap_argmax(heatmaps)
    coords = peaks
    if residuals is not None:
        if residuals.shape != peaks.shape:
            raise ValueError(f"residuals shape {tuple(residuals.shape)} does not match {tuple(peaks.shape)}")
        coords = peaks + residuals.float().clamp(-theta, theta)
    return coords, heatmap_confidence(heatmaps, peaks)


def heatmap_to_crop(coords: torch.Tensor, stride: int) -> torch.Tensor:
    """Heatmap pixel centres -> crop pixel centres: heatmap pixel h covers crop pixels
    ``stride*h .. stride*h + stride - 1``, whose centre is ``(h + 0.5) * stride - 0.5``."""
    return (coords + 0.5) * stride - 0.5


def crop_to_heatmap(coords, stride: int):
    """Inverse of `heatmap_to_crop` (used to build training targets)."""
    return (coords + 0.5) / stride - 0.5
