"""Ground-truth heatmaps Q for the heatmap losses (paper eq. 7, SPEC.md "Losses").

Q = exp(-d^2 / (2 sigma^2)) around each landmark on the heatmap grid, peak 1 (so Q is *not* a
probability distribution: that is why the paper's UCE is not a true cross entropy and BICE adds
the (1 - Q) log(1 - P) side). Pixel centres follow docs/CONVENTIONS.md: heatmap pixel ``[i, j]``
(row i, column j) has its centre at ``(x, y) = (j, i)``, so a landmark at an integer point gets
exactly 1 at that pixel and a sub-pixel landmark keeps its sub-pixel centre.
"""

from __future__ import annotations

import torch


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


def teacher_heatmaps(teacher_logits: torch.Tensor, heatmap_loss: str) -> torch.Tensor:
    """Soft targets from a teacher's heatmap logits ``(B, L, H, W)``, in the form the heatmap
    loss expects its Gaussian targets (for distillation, ``--teacher``).

    The teacher's heatmap as the loss reads it, rescaled to the Gaussian targets' peak of 1 so that
    the soft and the ground-truth targets weigh alike in the same loss: the spatial softmax
    (``bice_softmax``, ``uce``) or the per-pixel sigmoid (``bice_sigmoid``) divided by each map's
    maximum; for ``mse`` the teacher's output itself (that loss reads the output as the heatmap).
    """
    if teacher_logits.ndim != 4:
        raise ValueError(f"teacher logits must be (B, L, H, W), got shape {tuple(teacher_logits.shape)}")
    x = teacher_logits.detach().float()
    if heatmap_loss == "mse":
        return x
    if heatmap_loss in ("bice_softmax", "uce"):
        p = torch.softmax(x.flatten(2), dim=-1)
    elif heatmap_loss == "bice_sigmoid":
        p = torch.sigmoid(x.flatten(2))
    else:
        raise ValueError(f"no teacher targets for heatmap loss {heatmap_loss!r}")
    p = p / p.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return p.reshape(x.shape)
