"""Geometry of faces in images: landmark boxes, IoU, crops through one affine transform, and back.

Boxes follow docs/CONVENTIONS.md: ``(x1, y1, x2, y2)`` in 0-based pixel-centre coordinates, so an
image of width ``w`` covers ``[-0.5, w - 0.5]`` (`inside_fraction` uses that extent everywhere).

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


def landmark_box(points, visible=None) -> np.ndarray:
    """Tight box ``(x1, y1, x2, y2)`` = ``(min x, min y, max x, max y)`` of ``(..., L, 2)`` points.

    Only finite points count (NaN marks a missing landmark), and with a ``visible`` mask
    ``(..., L)`` only visible ones (annotations hold placeholders for missing points). Raises
    ``ValueError`` when a face has no point left. The one landmark box of the library: crops,
    tracking, metrics and the face-detector fitting all use it.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim < 2 or pts.shape[-1] != 2:
        raise ValueError(f"points must be (..., L, 2), got shape {pts.shape}")
    ok = np.isfinite(pts).all(axis=-1)
    if visible is not None:
        ok = ok & np.asarray(visible, dtype=bool).reshape(pts.shape[:-1])
    if ok.all():
        return np.concatenate([pts.min(axis=-2), pts.max(axis=-2)], axis=-1)
    if not ok.any(axis=-1).all():
        raise ValueError("every face needs at least one visible, finite point to form a landmark box")
    lo = np.where(ok[..., None], pts, np.inf).min(axis=-2)
    hi = np.where(ok[..., None], pts, -np.inf).max(axis=-2)
    return np.concatenate([lo, hi], axis=-1)


def as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """``boxes`` as float64 ``(N, 4)``; one box ``(4,)`` becomes ``(1, 4)``."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) x1,y1,x2,y2, got {arr.shape}")
    return arr


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU ``(len(a), len(b))`` of ``x1,y1,x2,y2`` boxes (continuous areas)."""
    a = as_boxes(a, "a")
    b = as_boxes(b, "b")
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def inside_fraction(box: Sequence[float], width: int, height: int) -> float:
    """Share of a box's area inside a ``width x height`` image, whose pixels (centres ``0..w-1``)
    cover ``[-0.5, w - 0.5] x [-0.5, h - 0.5]``: the one pixel-extent convention of images and video."""
    x1, y1, x2, y2 = (float(v) for v in box)
    ix = max(0.0, min(x2, width - 0.5) - max(x1, -0.5))
    iy = max(0.0, min(y2, height - 0.5) - max(y1, -0.5))
    area = (x2 - x1) * (y2 - y1)
    return float(ix * iy / area) if area > 0 else 0.0


def upright_frame(angles):
    """Unit vectors of the upright face frame in image coordinates: along the eye line, and down."""
    a = np.radians(np.asarray(angles, dtype=np.float64))
    u = np.stack([np.cos(a), np.sin(a)], axis=-1)
    v = np.stack([-np.sin(a), np.cos(a)], axis=-1)
    return u, v


def upright_landmark_box(points, angle: float = 0.0) -> np.ndarray:
    """The tight box of ``(L, 2)`` points in a frame rotated by ``angle`` degrees (as
    :func:`roll_angle`), returned as ``(x1, y1, x2, y2)`` centred on the rotated box's centre in
    image coordinates: what ``crop_matrix(box, ..., angle=angle)`` needs to frame the points."""
    p = np.asarray(points, dtype=np.float64)
    p = p[np.isfinite(p).all(axis=-1)]
    (u,), (v,) = upright_frame(np.array([angle], dtype=np.float64))
    pu, pv = p @ u, p @ v
    mu, mv = 0.5 * (pu.min() + pu.max()), 0.5 * (pv.min() + pv.max())
    w, h = pu.max() - pu.min(), pv.max() - pv.min()
    c = mu * u + mv * v
    return np.array([c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2])


def roll_angle(right_eye, left_eye) -> np.ndarray:
    """In-plane rotation (degrees) of faces from their eyes ``(..., 2)`` (the subject's right eye
    is on the image's left): the angle of the eye line in image coordinates (y down), positive when
    the face is turned clockwise on screen. ``crop_matrix(..., angle=roll)`` makes it horizontal."""
    d = np.asarray(left_eye, dtype=np.float64) - np.asarray(right_eye, dtype=np.float64)
    return np.degrees(np.arctan2(d[..., 1], d[..., 0]))


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
    """uint8 NHWC crops (numpy or torch) -> float32 NCHW tensor, ``(x/255 - mean) / std``.

    A numpy array is normalised by numpy (the same float32 operations in the same order, so the
    same numbers) and handed over without a copy: at batch 1 in front of an ONNX Runtime or OpenVINO
    graph, a torch operation here would wake torch's OpenMP threads, whose spin-wait then takes
    the cores from the graph runtime (docs/benchmarks.md)."""
    if isinstance(crops, np.ndarray):
        if crops.dtype != np.uint8:
            raise TypeError(f"crops must be uint8, got {crops.dtype}")
        if crops.ndim != 4:
            raise ValueError(f"crops must be (N, H, W, 3), got shape {crops.shape}")
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        x /= np.float32(255.0)
        x -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        x /= np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        return torch.from_numpy(x)
    x = torch.as_tensor(crops)
    if x.dtype != torch.uint8:
        raise TypeError(f"crops must be uint8, got {x.dtype}")
    return normalise_unit_crops(x.permute(0, 3, 1, 2).float().div_(255.0), mean, std)


def normalise_unit_crops(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """float NCHW RGB crops in [0, 1] -> the model input ``(x - mean) / std`` (float32): the one
    pixel normalisation of training, inference and calibration (docs/CONVENTIONS.md)."""
    x = x.to(torch.float32)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean_t) / std_t
