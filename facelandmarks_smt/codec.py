"""The heatmap codec: landmarks <-> heatmaps (batched torch, on the model's device).

Encoding (training targets): a Gaussian around each landmark on the heatmap grid (paper eq. 7),
peak 1, heatmap pixel ``[i, j]`` centred at ``(x, y) = (j, i)`` (docs/CONVENTIONS.md).

Decoding is argmax + clamped residual (SPEC.md): the residual head predicts the sub-pixel
offset of each landmark from its heatmap's argmax; clamping to [-theta, theta] is the inference
form of the hinge loss it was trained with. `heatmap_argmax` is the one argmax of the library:
inference decodes with it and the coordinate loss takes its residual targets from it.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

CONFIDENCE_WINDOW = 5
_NUMPY_ARGMAX_DTYPES = (torch.float32, torch.float64, torch.float16)


def gaussian_heatmaps(
    points_hm: torch.Tensor,
    size: int | tuple[int, int],
    sigma: float,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gaussian target heatmaps ``(B, L, H, W)`` for landmarks ``(B, L, 2)`` in heatmap pixels.

    Args:
        points_hm: ``(B, L, 2)`` float ``(x, y)`` in heatmap-pixel coordinates (pixel centres).
        size: ``S`` for an ``S x S`` grid, or ``(H, W)``.
        sigma: kernel radius in heatmap pixels (the paper's sigma: 4, then 3, then 2).
        visible: optional ``(B, L)`` bool; ``False`` gives an all-zero map (the paper's Fig. 3d
            case). Non-finite points are treated as invisible too, so NaN placeholders are safe.

    Built as the outer product of two 1-D Gaussians (``exp(-(dx^2+dy^2)/2s^2) =
    exp(-dx^2/2s^2) * exp(-dy^2/2s^2)``): O(B*L*(H+W)) exponentials instead of O(B*L*H*W).
    Points outside the grid are not clipped: their maps hold the in-grid tail of the Gaussian.
    """
    if points_hm.ndim != 3 or points_hm.shape[-1] != 2:
        raise ValueError(f"points_hm must be (B, L, 2), got shape {tuple(points_hm.shape)}")
    if not float(sigma) > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    dtype = points_hm.dtype if points_hm.is_floating_point() else torch.float32
    pts = points_hm.to(dtype)
    ok = torch.isfinite(pts).all(dim=-1)
    if visible is not None:
        if visible.shape != pts.shape[:2]:
            raise ValueError(f"visible must be {tuple(pts.shape[:2])}, got {tuple(visible.shape)}")
        ok = ok & visible.to(device=pts.device, dtype=torch.bool)
    # Replace masked points by 0 *before* the exponentials so NaN/inf never enter the maths.
    pts = torch.where(ok.unsqueeze(-1), pts, torch.zeros((), dtype=dtype, device=pts.device))
    inv = -0.5 / (float(sigma) ** 2)
    xs = torch.arange(w, dtype=dtype, device=pts.device)
    ys = torch.arange(h, dtype=dtype, device=pts.device)
    gx = torch.exp((xs - pts[..., 0:1]) ** 2 * inv)  # (B, L, W)
    gy = torch.exp((ys - pts[..., 1:2]) ** 2 * inv)  # (B, L, H)
    gy = gy * ok.unsqueeze(-1).to(dtype)  # invisible -> all-zero map
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def _tracing() -> bool:
    """Whether torch is tracing (ONNX export): the numpy fast paths would be baked in as constants."""
    return torch.jit.is_tracing()


def heatmap_argmax(heatmaps: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Integer ``(x, y)`` of each heatmap's maximum, ``(B, L, H, W) -> (B, L, 2)`` of ``dtype``
    (no gradient: the argmax is not differentiable)."""
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, L, H, W), got shape {tuple(heatmaps.shape)}")
    w = heatmaps.shape[-1]
    flat = heatmaps.detach().flatten(2)
    if flat.device.type == "cpu" and flat.dtype in _NUMPY_ARGMAX_DTYPES and flat.numel() and not _tracing():
        # numpy's argmax is vectorised where torch's (over the last dim, on CPU) is not: 0.02 vs 0.3 ms for
        # 68 maps of 64x64; both take the first maximum and treat NaN as the maximum (tests/test_decode.py)
        idx = torch.from_numpy(np.ascontiguousarray(flat.numpy()).argmax(axis=-1))
    else:
        idx = flat.argmax(dim=-1)
    return torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(dtype)


def heatmap_confidence(heatmaps: torch.Tensor, peaks: torch.Tensor, window: int = CONFIDENCE_WINDOW) -> torch.Tensor:
    """Per-landmark confidence in [0, 1]: the spatial-softmax mass in a ``window``-pixel square
    around the peak (pixels outside the map count as 0). A sharp single peak scores near 1, a flat
    or multi-modal map near 0.

    Only the ``window x window`` pixels around each peak are gathered: the softmax's normaliser is
    one ``logsumexp`` pass over each map, and no pooling runs over whole heatmaps (at batch 1 the
    pooled form cost about a tenth of a `tiny` network call). Same numbers as
    ``avg_pool2d(softmax(heatmaps), window, stride=1, padding=window // 2) * window ** 2`` read at
    the peaks (tests/test_decode.py)."""
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of pixels >= 1, got {window}")
    b, l, h, w = heatmaps.shape
    flat = heatmaps.float().reshape(b, l, h * w)
    log_norm = _logsumexp_last(flat)
    r = window // 2
    d = torch.arange(-r, r + 1, device=flat.device)
    ys = peaks[..., 1].long().unsqueeze(-1) + d  # (B, L, window)
    xs = peaks[..., 0].long().unsqueeze(-1) + d
    inside = (((ys >= 0) & (ys < h)).unsqueeze(-1) & ((xs >= 0) & (xs < w)).unsqueeze(-2)).flatten(2)
    idx = (ys.clamp(0, h - 1).unsqueeze(-1) * w + xs.clamp(0, w - 1).unsqueeze(-2)).flatten(2)
    mass = torch.exp(flat.gather(-1, idx) - log_norm).masked_fill_(~inside, 0.0).sum(-1)
    return mass.clamp_(0.0, 1.0)


def _logsumexp_last(flat: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` over the last dimension (kept). On CPU without autograd it runs outside torch:
    a torch reduction this size runs on torch's OpenMP threads, whose spin-wait afterwards takes the
    cores from an ONNX Runtime or OpenVINO graph at batch 1 (`geometry.normalise_crops`); OpenCV's
    vectorised ``exp`` makes it cheaper than torch's too (68 maps of 64x64: about 0.2 ms against
    0.4 for torch on one thread and 1.2 for numpy's ``exp``). Rows with a non-finite maximum (a
    broken model) go to torch, whose conventions for them the result keeps."""
    if _tracing():
        # exported graphs get the max-shifted form: OpenVINO's ReduceLogSumExp (2026.4) is off by
        # several units on heatmap-sized rows, where this form matches torch to 1e-6
        peak = flat.amax(dim=-1, keepdim=True)
        return torch.log(torch.exp(flat - peak).sum(dim=-1, keepdim=True)) + peak
    if flat.device.type == "cpu" and flat.dtype == torch.float32 and not flat.requires_grad and flat.numel():
        a = flat.detach().numpy().reshape(-1, flat.shape[-1])
        peak = a.max(axis=-1, keepdims=True)
        if np.isfinite(peak).all():
            shifted = np.subtract(a, peak)
            cv2.exp(shifted, shifted)
            return torch.from_numpy((np.log(shifted.sum(axis=-1, keepdims=True)) + peak).reshape(*flat.shape[:-1], 1))
    return torch.logsumexp(flat, dim=-1, keepdim=True)


def decode_heatmaps(heatmaps: torch.Tensor, residuals: torch.Tensor | None, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks in heatmap pixels ``(B, L, 2)`` and confidences ``(B, L)``.

    ``t = argmax + clamp(residual, -theta, theta)``; ``residuals=None`` decodes the argmax alone.
    """
    heatmaps = heatmaps.contiguous()  # torch's convolutions may return channels_last strides: one copy, not one per pass
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


def decode_to_crop(heatmaps: torch.Tensor, residuals: torch.Tensor | None, theta: float,
                   stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`decode_heatmaps`, then `heatmap_to_crop`: landmarks in crop pixels ``(B, L, 2)`` and
    confidences ``(B, L)``, what inference returns for a crop."""
    coords, scores = decode_heatmaps(heatmaps, residuals, theta)
    return heatmap_to_crop(coords, stride), scores


class HeatmapDecoder(torch.nn.Module):
    """`decode_to_crop` as a module, ``(heatmaps, residuals) -> (crop points, scores)``: every backend
    decodes with it, and the graph runtimes run its exported graph (`runtime.export.export_decoder_onnx`)
    right after the network, on their own threads and on outputs still in cache, instead of handing
    the heatmaps to Python (tiny at batch 1: docs/benchmarks.md, "Decoding inside the runtime")."""

    def __init__(self, theta: float, stride: int) -> None:
        super().__init__()
        self.theta, self.stride = float(theta), int(stride)

    @classmethod
    def from_config(cls, config) -> "HeatmapDecoder":
        """The decoder of a `config.ModelConfig` (its ``theta`` and ``heatmap_stride``)."""
        return cls(config.theta, config.heatmap_stride)

    def forward(self, heatmaps: torch.Tensor, residuals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_to_crop(heatmaps, residuals, self.theta, self.stride)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, stride={self.stride}"
