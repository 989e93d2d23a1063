"""Heatmap targets of training: the Gaussian ground truth Q (paper eq. 7) comes from
`facelandmarks_smt.codec.gaussian_heatmaps` (re-exported here), and `teacher_heatmaps` turns a
teacher's logits into soft targets of the same form for distillation.
"""

from __future__ import annotations

import torch

from ..codec import gaussian_heatmaps  # noqa: F401  (the targets are part of the codec; kept importable here)


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
