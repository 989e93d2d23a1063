"""Weight-space interpolation between two fine-tunings of one network (WiSE-FT, Wortsman et al.,
"Robust fine-tuning of zero-shot models", CVPR 2022): ``(1 - alpha) * start + alpha * tuned``.

When ``tuned`` was fine-tuned from ``start`` (smtnet-300w-small-wild from small v5), the two lie in
one basin and the line between them trades what each is good at (near-frontal faces against turned
and degraded ones) at no training cost; pick ``alpha`` on validation data.

Several fine-tunings of the same start can be averaged first (a uniform model soup, Wortsman et al.,
"Model soups", ICML 2022): what the runs learnt in common adds up, each run's own drift partly cancels.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch


def average_states(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform mean of several state dicts of one network (floating tensors, BatchNorm statistics
    too); integer tensors (BatchNorm's batch counters) are taken from the first."""
    if not states:
        raise ValueError("average_states needs at least one state dict")
    first = states[0]
    for i, st in enumerate(states[1:], 1):
        if set(st) != set(first):
            only = sorted(set(st) ^ set(first))
            raise ValueError(f"state dict {i} holds other tensors than the first, e.g. {only[:3]}")
    out = {}
    for k, v in first.items():
        if not v.is_floating_point():
            out[k] = v.clone()
            continue
        acc = torch.zeros(v.shape, dtype=torch.float64)
        for i, st in enumerate(states):
            if st[k].shape != v.shape:
                raise ValueError(f"tensor {k!r} has shape {tuple(st[k].shape)} in state dict {i} and "
                                 f"{tuple(v.shape)} in the first")
            acc += st[k].double()
        out[k] = (acc / len(states)).float()
    return out


def interpolate_state(start: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor],
                      alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * start + alpha * tuned`` for every floating tensor (BatchNorm statistics too);
    integer tensors (BatchNorm's batch counters) are taken from ``tuned``. Both must hold the same
    names and shapes."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if set(start) != set(tuned):
        only = sorted(set(start) ^ set(tuned))
        raise ValueError(f"the two state dicts hold different tensors, e.g. {only[:3]}")
    out = {}
    for k, b in tuned.items():
        a = start[k]
        if a.shape != b.shape:
            raise ValueError(f"tensor {k!r} has shape {tuple(a.shape)} in one and {tuple(b.shape)} in the other")
        if b.is_floating_point():
            out[k] = torch.lerp(a.float(), b.float(), float(alpha))
        else:
            out[k] = b.clone()
    return out
