"""From an image and a face box to a model-ready crop through one affine transform, and back.

Every crop, at training and inference, goes through `crop_matrix`: the landmark box is made
square, enlarged by the config's crop factor and mapped onto the ``size x size`` crop, optionally
rotated, scaled, shifted and mirrored (the training augmentation uses the same function), so the
inverse transform maps predicted crop points exactly back to image pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
import torch


def landmark_box(points: np.ndarray) -> np.ndarray:
    """Tight box ``(x1, y1, x2, y2)`` of ``(..., L, 2)`` points."""
    points = np.asarray(points, dtype=np.float64)
    return np.concatenate([points.min(axis=-2), points.max(axis=-2)], axis=-1)


def square_box(box: Sequence[float], crop_factor: float) -> tuple[float, float, float]:
    """Centre ``(cx, cy)`` and side of the square crop region of a landmark box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * crop_factor
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, side


def crop_matrix(
    box: Sequence[float],
    crop_factor: float,
    size: int,
    angle: float = 0.0,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    flip: bool = False,
) -> np.ndarray:
    """2x3 float64 affine taking image pixel centres to crop pixel centres.

    ``angle`` rotates the face counter-clockwise by that many degrees in the crop, ``scale`` > 1
    makes the face larger in the crop, ``shift`` moves the crop window by that fraction of the
    square's side, ``flip`` mirrors the crop horizontally (the caller permutes landmark indices).
    """
    cx, cy, side = square_box(box, crop_factor)
    cx += shift[0] * side
    cy += shift[1] * side
    k = size / side * scale
    a = math.radians(angle)
    cos, sin = math.cos(a) * k, math.sin(a) * k
    # Rotation by +angle in image coordinates (y down) appears counter-clockwise on screen.
    rot = np.array([[cos, sin], [-sin, cos]])
    centre_out = (size - 1) / 2.0
    m = np.zeros((2, 3))
    m[:, :2] = rot
    m[:, 2] = np.array([centre_out, centre_out]) - rot @ np.array([cx, cy])
    if flip:
        m[0] = -m[0]
        m[0, 2] += size - 1
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Exact inverse of a 2x3 affine (or a stack of them, ``(..., 2, 3)``)."""
    m = np.asarray(m, dtype=np.float64)
    a = m[..., :2]
    inv = np.linalg.inv(a)
    t = -np.einsum("...ij,...j->...i", inv, m[..., 2])
    return np.concatenate([inv, t[..., None]], axis=-1)


def transform_points(points, m):
    """Apply 2x3 affine(s) to ``(..., L, 2)`` points; numpy or torch, batched over leading dims."""
    if isinstance(points, torch.Tensor):
        m = torch.as_tensor(m, dtype=points.dtype, device=points.device)
        return points @ m[..., :2].transpose(-1, -2) + m[..., None, :, 2]
    points = np.asarray(points)
    m = np.asarray(m)
    out = points @ np.swapaxes(m[..., :2], -1, -2) + m[..., None, :, 2]
    return out.astype(np.result_type(points.dtype, np.float32), copy=False)


def _warp_bilinear(image: np.ndarray, m: np.ndarray, size: int, border_value: int) -> np.ndarray:
    return cv2.warpAffine(
        image, np.asarray(m, dtype=np.float64), (size, size), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(border_value,) * 3,
    )


def warp_crop(image: np.ndarray, m: np.ndarray, size: int, border_value: int = 0,
              antialias: bool = True) -> np.ndarray:
    """The ``size x size`` crop of an HxWxC uint8 image under affine ``m``: the one crop warp of
    training (cache and augmentation) and inference, so the network gets the pixels it was
    trained on.

    Bilinear; when ``m`` shrinks by more than 2x (scale ``k`` < 1/2) and ``antialias`` is on,
    the covered part of the image is first averaged down by the integer factor
    ``d = floor(1/k)`` (cv2 INTER_AREA, exact for integer factors) and the remaining
    ``k * d`` in (1/2, 1] is left to the bilinear warp, whose 2x2 footprint then no longer skips
    source pixels (a large face would otherwise alias). Pixel centres stay exact: source pixel
    block ``j`` has its centre at ``x0 + d*j + (d-1)/2``. Works for any similarity (rotation too).
    """
    m = np.asarray(m, dtype=np.float64)
    k = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    d = int(math.floor(1.0 / k)) if k > 0 else 1
    if not antialias or d < 2:
        return _warp_bilinear(image, m, size, border_value)
    h, w = image.shape[:2]
    inv = invert_affine(m)
    corners = transform_points(np.array([[-1.0, -1.0], [size, -1.0], [-1.0, size], [size, size]]), inv)
    x0 = max(0, int(math.floor(corners[:, 0].min())) - d)
    y0 = max(0, int(math.floor(corners[:, 1].min())) - d)
    x1 = min(w, int(math.ceil(corners[:, 0].max())) + d + 1)
    y1 = min(h, int(math.ceil(corners[:, 1].max())) + d + 1)
    rw, rh = (x1 - x0) // d * d, (y1 - y0) // d * d  # drops < d pixels at the image's far edge
    if rw < d or rh < d:
        return _warp_bilinear(image, m, size, border_value)
    small = cv2.resize(image[y0:y0 + rh, x0:x0 + rw], (rw // d, rh // d), interpolation=cv2.INTER_AREA)
    ms = m.copy()
    ms[:, :2] = m[:, :2] * d
    ms[:, 2] = m[:, :2] @ np.array([x0 + (d - 1) / 2.0, y0 + (d - 1) / 2.0]) + m[:, 2]
    return _warp_bilinear(small, ms, size, border_value)


def normalise_crops(crops, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 NHWC crops (numpy or torch) -> float32 NCHW tensor, ``(x/255 - mean) / std``."""
    x = torch.as_tensor(crops)
    if x.dtype != torch.uint8:
        raise TypeError(f"crops must be uint8, got {x.dtype}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean_t) / std_t
