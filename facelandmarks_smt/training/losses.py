"""SMT-Net losses (paper sections 3.3 and 4, SPEC.md "Losses").

Heatmap losses take network logits ``(B, L, H, W)`` and targets Q of the same shape (Gaussian maps
with peak 1, ``targets.gaussian_heatmaps``) and share one reduction: **each heatmap's loss is
summed over its pixels, then averaged over batch and landmarks** (over the entries with
``weight > 0`` when a ``(B, L)`` weight / visibility mask is given). The paper sums over landmarks
(eq. 6, 8, 5); averaging instead only divides every loss by the same L, so the balance between
Loss_h and Loss_c (eq. 3) is the paper's while the scale no longer depends on the landmark scheme.

All losses compute in at least float32 (bf16/fp16 inputs are upcast; float64 stays float64 so
``gradcheck`` works) and are finite, with finite gradients, for logits up to |x| ~ 1e4.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..codec import heatmap_argmax

__all__ = [
    "bice_loss",
    "bice_softmax_loss",
    "bice_sigmoid_loss",
    "uce_loss",
    "mse_loss",
    "coord_loss",
    "HEATMAP_LOSSES",
    "get_heatmap_loss",
]


def _hi(t: torch.Tensor) -> torch.Tensor:
    """Upcast half precision to float32 (autocast outputs); keep float32/float64 as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _check_pair(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes, upcast, and zero the targets of weight-0 landmarks (so a NaN target of an
    invisible landmark cannot turn the gradient into NaN through ``0 * NaN``)."""
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, L, H, W), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != logits shape {tuple(logits.shape)}")
    x = _hi(logits)
    q = target.to(dtype=x.dtype, device=x.device)
    if weight is not None:
        q = _zero_where_unweighted(q, weight)
    return x, q


def _zero_where_unweighted(t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``t`` (leading dims ``(B, L)``) with the entries of ``weight <= 0`` replaced by 0."""
    if weight.shape != t.shape[:2]:
        raise ValueError(f"weight must be {tuple(t.shape[:2])}, got {tuple(weight.shape)}")
    keep = (weight.to(device=t.device) > 0).reshape(weight.shape + (1,) * (t.ndim - 2))
    return torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))


def _reduce(per_map: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``(B, L)`` per-heatmap losses; with ``weight``, ``sum(w * loss) / sum(w)``.

    Entries with ``weight <= 0`` are removed with ``where`` (not multiplied by 0), so they cannot
    leak a NaN into the loss value; together with ``_zero_where_unweighted`` on the targets the
    gradient stays finite too. All-zero weight -> 0.
    """
    if weight is None:
        return per_map.mean()
    if weight.shape != per_map.shape:
        raise ValueError(f"weight must be {tuple(per_map.shape)}, got {tuple(weight.shape)}")
    w = weight.to(dtype=per_map.dtype, device=per_map.device)
    keep = w > 0
    w = torch.where(keep, w, torch.zeros((), dtype=w.dtype, device=w.device))
    num = torch.where(keep, per_map, torch.zeros((), dtype=per_map.dtype, device=per_map.device))
    return (num * w).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def _st_clamp(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Straight-through clamp: the value is ``clamp(v, lo, hi)``, the gradient is that of ``v``.

    Used for log P and log(1 - P) with ``[lo, hi] = [log eps, log(1 - eps)]``: the loss value of a
    single pixel is bounded by ``-log eps`` (as with "P clamped to [eps, 1 - eps]"), but unlike a
    hard clamp a confidently wrong pixel (P -> 1 where Q = 0) still receives the exact, bounded
    gradient that pushes it down instead of a zero gradient.
    """
    return v + (v.clamp(lo, hi) - v).detach()


def _log_p_and_log_1mp_softmax(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``log P`` and ``log(1 - P)`` of the spatial softmax over the last dim.

    Every element except each map's argmax has ``P <= 1/2``, where ``log1p(-P)`` is accurate.
    When no map's maximum exceeds 1/2 either (the usual case in training: Gaussian targets keep
    the softmax spread), that single pass is exact and the loss costs about as much as UCE. Only
    otherwise the argmax element uses the leave-one-out form
    ``log(1 - P_j) = logsumexp_{k != j} x_k - logsumexp_k x_k``, so nothing cancels and nothing is
    -inf for finite logits, whatever their size.
    """
    lse = torch.logsumexp(x, dim=-1, keepdim=True)
    log_p = x - lse
    max_log_p, idx = log_p.max(dim=-1, keepdim=True)
    if bool((max_log_p <= -math.log(2.0)).all()):
        return log_p, torch.log1p(-torch.exp(log_p))
    is_max = torch.zeros_like(x, dtype=torch.bool).scatter_(-1, idx, True)
    lse_others = torch.logsumexp(x.masked_fill(is_max, float("-inf")), dim=-1, keepdim=True)
    log1mp_max = (lse_others - lse).expand_as(x)
    # Feed a harmless value to log1p at the argmax so its (discarded) branch has no inf/NaN grad.
    safe = torch.where(is_max, torch.full_like(log_p, -math.log(2.0)), log_p)
    log1mp = torch.where(is_max, log1mp_max, torch.log1p(-torch.exp(safe)))
    return log_p, log1mp


def bice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = "softmax",
    eps: float = 1e-6,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bilateral Inhibition Cross Entropy (eq. 8): ``-sum_pixels [Q log P + (1-Q) log(1-P)]``.

    The ``(1 - Q) log(1 - P)`` side penalises probability on the ~90 % of pixels where Q = 0,
    which UCE ignores (paper section 4); for two elements it enlarges the optimum's margin from
    ``|q1-q2|/(q1+q2)`` to ``|q1-q2|`` (eq. 11, 14).

    Args:
        mode: ``"softmax"`` (default): P is the spatial softmax of each heatmap, as in the paper's
            margin analysis (eq. 9-14). ``"sigmoid"``: P = sigmoid per pixel, i.e. pixel-wise
            binary cross entropy (Bulat et al.), ``log P = logsigmoid(x)``,
            ``log(1-P) = logsigmoid(-x)``.
        eps: P is clamped to ``[eps, 1 - eps]`` in value only (straight-through, see
            ``_st_clamp``): each pixel costs at most ``-log eps`` while gradients stay exact.
            ``eps=0`` disables the clamp.
        weight: optional ``(B, L)`` mask / weights of the landmarks that count.
    """
    x, q = _check_pair(logits, target, weight)
    b, l, h, w = x.shape
    if mode == "softmax":
        log_p, log1mp = _log_p_and_log_1mp_softmax(x.reshape(b, l, h * w))
    elif mode == "sigmoid":
        flat = x.reshape(b, l, h * w)
        log_p, log1mp = F.logsigmoid(flat), F.logsigmoid(-flat)
    else:
        raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}")
    if eps > 0:
        lo, hi = math.log(eps), math.log1p(-eps)
        log_p, log1mp = _st_clamp(log_p, lo, hi), _st_clamp(log1mp, lo, hi)
    qf = q.reshape(b, l, h * w)
    per_map = -(qf * log_p + (1.0 - qf) * log1mp).sum(dim=-1)
    return _reduce(per_map, weight)


def bice_softmax_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """BICE with P = spatial softmax (the paper's analysis; registry name ``bice_softmax``)."""
    return bice_loss(logits, target, mode="softmax", weight=weight)


def bice_sigmoid_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """BICE with P = per-pixel sigmoid (registry name ``bice_sigmoid``)."""
    return bice_loss(logits, target, mode="sigmoid", weight=weight)


def uce_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Unilateral cross entropy (eq. 6): ``-sum_pixels Q log softmax(x)``.

    "Unilateral" because Q (peak 1) is not a distribution and pixels with Q = 0 add no term: the
    baseline BICE is compared against. ``log_softmax`` is exact for any finite logits.
    """
    x, q = _check_pair(logits, target, weight)
    b, l, h, w = x.shape
    log_p = torch.log_softmax(x.reshape(b, l, h * w), dim=-1)
    per_map = -(q.reshape(b, l, h * w) * log_p).sum(dim=-1)
    return _reduce(per_map, weight)


def mse_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel squared error ``sum_pixels (x - Q)^2``, the output used directly as the heatmap
    (the classic hourglass L2 baseline of the ablation)."""
    x, q = _check_pair(logits, target, weight)
    per_map = (x - q).square().flatten(2).sum(dim=-1)
    return _reduce(per_map, weight)


def coord_loss(
    residual_pred: torch.Tensor,
    heatmaps: torch.Tensor,
    landmarks_hm: torch.Tensor,
    theta: float = 0.5,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Coordinate loss (eq. 4, 5): squared L2 to the argmax residual plus a hinge at ``theta``.

    Per landmark: ``||t_c - p||^2 + max(0, |p_x| - theta) + max(0, |p_y| - theta)`` with
    ``t_c = t - t_h`` (eq. 3), ``t_h`` the integer ``(x, y)`` argmax of the *same stack's*
    heatmap. The argmax is detached (it is not differentiable, and the residual head must not
    drive the heatmaps: the paper's reason for the hinge), so no gradient reaches ``heatmaps``.
    The L2 term is the *squared* Euclidean distance. Reduced like the heatmap losses: mean over
    batch and landmarks (the paper's sum over l divided by L).

    Args:
        residual_pred: ``(B, L, 2)`` predicted residuals in heatmap pixels.
        heatmaps: ``(B, L, H, W)`` that stack's heatmap output (logits; only the argmax is used).
        landmarks_hm: ``(B, L, 2)`` ground truth ``(x, y)`` in heatmap pixels.
        theta: hinge threshold in heatmap pixels (paper: 0.5).
        weight: optional ``(B, L)`` mask / weights of the landmarks that count.
    """
    if residual_pred.ndim != 3 or residual_pred.shape[-1] != 2:
        raise ValueError(f"residual_pred must be (B, L, 2), got shape {tuple(residual_pred.shape)}")
    if heatmaps.ndim != 4 or heatmaps.shape[:2] != residual_pred.shape[:2]:
        raise ValueError(f"heatmaps must be (B, L, H, W) matching residuals, got {tuple(heatmaps.shape)}")
    if landmarks_hm.shape != residual_pred.shape:
        raise ValueError(f"landmarks_hm shape {tuple(landmarks_hm.shape)} != {tuple(residual_pred.shape)}")
    p = _hi(residual_pred)
    with torch.no_grad():
        t_h = heatmap_argmax(heatmaps, dtype=p.dtype)  # the argmax inference decodes from
        t_c = landmarks_hm.to(dtype=p.dtype, device=p.device) - t_h
        if weight is not None:  # invisible landmarks are often stored as NaN
            t_c = _zero_where_unweighted(t_c, weight)
    l2 = (t_c - p).square().sum(dim=-1)
    hinge = torch.relu(p.abs() - theta).sum(dim=-1)
    return _reduce(l2 + hinge, weight)


HEATMAP_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "bice_softmax": bice_softmax_loss,
    "bice_sigmoid": bice_sigmoid_loss,
    "uce": uce_loss,
    "mse": mse_loss,
}


def get_heatmap_loss(name: str) -> Callable[..., torch.Tensor]:
    """``HEATMAP_LOSSES[name]`` with an error that lists the valid names (for config typos)."""
    try:
        return HEATMAP_LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown heatmap loss {name!r}; choose from {sorted(HEATMAP_LOSSES)}") from None
