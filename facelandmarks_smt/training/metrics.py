"""Landmark accuracy metrics of the SMT-Net paper (section 5.2), numpy only.

Per face the error is ``E = mean_l ||p_l - t_l||_2 / d`` where ``d`` is either the
inter-ocular (outer eye corner) distance of the ground truth (300-W, COFW) or the face box size
``sqrt(w * h)`` (AFLW).  From the per-face errors we report NME (mean), NMDE (median), the failure
rate and the area under the cumulative error distribution (CED) curve, both up to 8 %.

Error arrays are plain fractions (0.05 means 5 %); :func:`summarise` converts to percent because
that is how the paper's tables read.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..geometry import landmark_box
from ..schemes import INDICES_49  # 68 points less the jaw (0-16) and inner-mouth corners 60, 64

__all__ = [
    "OUTER_EYE_CORNERS",
    "INDICES_49",
    "landmark_boxes",
    "normalised_errors",
    "nme",
    "nmde",
    "failure_rate",
    "auc",
    "ced_curve",
    "summarise",
    "summarise_errors",
]

#: Outer eye corners of the 68-point scheme (0-based): the inter-ocular normaliser.
OUTER_EYE_CORNERS: Tuple[int, int] = (36, 45)

#: The 49-point variant: the 68 points less the 17 jaw points (0..16) and the inner-mouth
#: corners 60 and 64.

_NORMS = ("inter-ocular", "box")


def _as_faces(a, name: str) -> np.ndarray:
    """Return ``a`` as float64 ``(N, L, 2)``; a single ``(L, 2)`` face is promoted to N=1."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[2] != 2:
        raise ValueError(f"{name} must have shape (N, L, 2) or (L, 2), got {np.shape(a)}")
    return arr


def landmark_boxes(points, visible=None) -> np.ndarray:
    """Tight landmark boxes ``(N, 4)`` as ``(min x, min y, max x, max y)`` (`geometry.landmark_box`).

    With a ``visible`` mask only visible points count, because annotations often hold placeholder
    coordinates (e.g. 0 or -1) for points that are missing.
    """
    pts = _as_faces(points, "points")
    return landmark_box(pts, None if visible is None else np.asarray(visible, dtype=bool).reshape(pts.shape[:2]))


def error_normalisation(num_landmarks: int, scheme=None) -> dict:
    """The error normalisation of a landmark layout, as keyword arguments of `normalised_errors`:
    inter-ocular (outer eye corners) for 68 points or a scheme that names its eye corners, else
    the face box. The one choice that validation and ``evaluate`` share."""
    if num_landmarks == 68:
        return {"norm": "inter-ocular"}
    eyes = getattr(scheme, "eye_corner_indices", None) if scheme is not None else None
    if eyes and getattr(scheme, "num_landmarks", num_landmarks) == num_landmarks:
        return {"norm": "inter-ocular", "eye_indices": tuple(eyes)}
    return {"norm": "box"}


def _normalisers(gt, norm, boxes, visible, eye_indices) -> np.ndarray:
    """Per-face normalising distance ``d`` (N,), always computed from the full ground truth."""
    n, num_points = gt.shape[:2]
    if norm == "inter-ocular":
        if eye_indices is None:
            if num_points != 68:
                raise ValueError(
                    f"inter-ocular normalisation needs the 68-point scheme (got L={num_points}); "
                    "pass eye_indices=(a, b) for other schemes"
                )
            eye_indices = OUTER_EYE_CORNERS
        a, b = (int(i) for i in eye_indices)
        if not (0 <= a < num_points and 0 <= b < num_points):
            raise ValueError(f"eye_indices {eye_indices} out of range for L={num_points}")
        d = np.linalg.norm(gt[:, a] - gt[:, b], axis=1)
    elif norm == "box":
        if boxes is None:
            bx = landmark_boxes(gt, visible)
        else:
            bx = np.asarray(boxes, dtype=np.float64)
            if bx.ndim == 1:
                bx = bx[None]
            if bx.shape != (n, 4):
                raise ValueError(f"boxes must have shape ({n}, 4), got {bx.shape}")
        w = bx[:, 2] - bx[:, 0]
        h = bx[:, 3] - bx[:, 1]
        d = np.sqrt(np.clip(w, 0, None) * np.clip(h, 0, None))
    else:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if not np.all(d > 0):
        raise ValueError("normalising distance must be positive for every face")
    return d


def normalised_errors(
    pred,
    gt,
    norm: str = "inter-ocular",
    boxes=None,
    indices: Optional[Sequence[int]] = None,
    visible=None,
    eye_indices: Optional[Tuple[int, int]] = None,
) -> np.ndarray:
    """Per-face normalised mean point-to-point error ``E`` (N,), as a fraction.

    ``pred``/``gt`` are ``(N, L, 2)`` (or one ``(L, 2)`` face).  ``norm="inter-ocular"`` divides by
    the outer-eye-corner distance of the ground truth (points 36/45; other schemes must name their
    corners via ``eye_indices``); ``norm="box"`` divides by ``sqrt(w*h)`` of ``boxes`` (N, 4 x1y1x2y2)
    or, when ``boxes`` is None, of the ground-truth landmark box.  ``indices`` restricts the mean to
    a subset of points (e.g. :data:`INDICES_49`); the normaliser still comes from the full ground
    truth so the subset errors stay comparable with the full ones.  ``visible`` (N, L) drops
    unannotated points from the mean (a face with no visible selected point raises).
    """
    p = _as_faces(pred, "pred")
    t = _as_faces(gt, "gt")
    if p.shape != t.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {t.shape}")
    if p.shape[0] == 0:
        raise ValueError("no faces to score")
    n, num_points = t.shape[:2]
    vis = None
    if visible is not None:
        vis = np.asarray(visible, dtype=bool)
        if vis.ndim == 1:
            vis = vis[None]
        if vis.shape != (n, num_points):
            raise ValueError(f"visible must have shape ({n}, {num_points}), got {vis.shape}")
    d = _normalisers(t, norm, boxes, vis, eye_indices)

    dist = np.linalg.norm(p - t, axis=2)  # (N, L)
    weight = np.ones_like(dist) if vis is None else vis.astype(np.float64)
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0 or idx.min() < -num_points or idx.max() >= num_points:
            raise ValueError(f"indices out of range for L={num_points}")
        dist = dist[:, idx]
        weight = weight[:, idx]
    count = weight.sum(axis=1)
    if not np.all(count > 0):
        raise ValueError("a face has no visible point among the selected indices")
    # Invisible points may hold garbage (even NaN) coordinates: zero them rather than multiply.
    dist = np.where(weight > 0, dist, 0.0)
    return (dist * weight).sum(axis=1) / count / d


def _errors(errors) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("no errors to summarise")
    if np.isnan(e).any():
        raise ValueError("errors contain NaN")
    return e


def nme(errors) -> float:
    """Normalised mean error: the mean of the per-face errors (a fraction)."""
    return float(np.mean(_errors(errors)))


def nmde(errors) -> float:
    """Normalised median error: robust to a few catastrophic faces (paper Table 3)."""
    return float(np.median(_errors(errors)))


def failure_rate(errors, threshold: float = 0.08) -> float:
    """Fraction of faces whose error exceeds ``threshold`` (strictly greater: ``E > 0.08``).

    Infinite errors (e.g. missed faces) count as failures.
    """
    e = _errors(errors)
    return float(np.mean(e > threshold))


def auc(errors, threshold: float = 0.08, steps: Optional[int] = None) -> float:
    """Area under the CED curve on ``[0, threshold]`` divided by ``threshold`` (in [0, 1]).

    With ``steps=None`` (default) the empirical step CDF ``F(x) = #{E_i <= x} / N`` is integrated
    exactly: each face contributes ``(threshold - E_i) / threshold`` for ``E_i < threshold`` and 0
    otherwise, so ``AUC = mean(clip(1 - E / threshold, 0, 1))``.  A coarse grid would bias the
    result by up to one grid step, which matters when comparing with the paper's 2-digit values.
    ``steps=k`` instead applies the trapezoid rule on ``k`` evenly spaced points, only to reproduce
    toolkits that do so.
    """
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    e = _errors(errors)
    if steps is None:
        return float(np.mean(np.clip(1.0 - e / threshold, 0.0, 1.0)))
    if steps < 2:
        raise ValueError("steps must be >= 2")
    x = np.linspace(0.0, threshold, int(steps))
    y = np.searchsorted(np.sort(e), x, side="right") / e.size
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / threshold)


def ced_curve(errors, threshold: float = 0.08) -> Tuple[np.ndarray, np.ndarray]:
    """Exact cumulative error distribution on ``[0, threshold]``.

    Returns ``(x, y)`` with ``y[i] = fraction of faces with E <= x[i]``; ``x`` holds 0, every
    distinct error below the threshold and the threshold itself, so drawing it as a post-step
    curve (``ax.step(x, y, where="post")``) is the exact empirical CDF.
    """
    e = _errors(errors)
    inside = e[(e >= 0) & (e < threshold)]
    x = np.unique(np.concatenate([[0.0], inside, [float(threshold)]]))
    y = np.searchsorted(np.sort(e), x, side="right") / e.size
    return x, y


def _suffix(threshold: float) -> str:
    return f"{threshold * 100:g}"


def summarise_errors(errors, threshold: float = 0.08) -> dict:
    """NME, NMDE, FR and AUC (percent) of precomputed per-face errors, plus the face count."""
    e = _errors(errors)
    s = _suffix(threshold)
    return {
        "nme": 100.0 * nme(e),
        "nmde": 100.0 * nmde(e),
        f"fr{s}": 100.0 * failure_rate(e, threshold),
        f"auc{s}": 100.0 * auc(e, threshold),
        "faces": int(e.size),
    }


def summarise(
    pred,
    gt,
    norm: str = "inter-ocular",
    boxes=None,
    visible=None,
    eye_indices: Optional[Tuple[int, int]] = None,
    threshold: float = 0.08,
) -> dict:
    """All paper metrics in percent: ``nme, nmde, fr8, auc8`` and, for 68 points, ``nme49`` and
    ``nmde49`` (the 49-point variant of Table 3), plus ``faces`` and ``norm``.

    Key suffixes follow ``threshold`` (``fr8``/``auc8`` for the default 0.08).
    """
    e = normalised_errors(pred, gt, norm, boxes, None, visible, eye_indices)
    out = summarise_errors(e, threshold)
    if _as_faces(gt, "gt").shape[1] == 68:
        e49 = normalised_errors(pred, gt, norm, boxes, INDICES_49, visible, eye_indices)
        out["nme49"] = 100.0 * nme(e49)
        out["nmde49"] = 100.0 * nmde(e49)
    out["norm"] = norm
    return out
