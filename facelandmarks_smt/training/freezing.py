"""Frozen parts for fine-tuning: early stages (``freeze_stacks``) and BatchNorm statistics (``freeze_bn_stats``).

Why a module apart from the trainer: what "a stack" contains is a fact about the architecture's
layout (stem, then per stack an hourglass, features, two heads and the merges into the next stack)
that the trainer should not spell out, and it is tested on its own.
"""

from __future__ import annotations

import torch

from ..models.smtnet import SMTNet


def early_stage_modules(model: SMTNet, num_stacks: int) -> list[torch.nn.Module]:
    """The stem and every module of the first ``num_stacks`` stacks (0: none)."""
    total = len(model.hourglasses)
    if not 0 <= num_stacks < total:
        raise ValueError(f"can freeze 0..{total - 1} of {total} stacks (the last always learns), got {num_stacks}")
    if num_stacks == 0:
        return []
    modules: list[torch.nn.Module] = [model.stem]
    for s in range(num_stacks):
        modules += [model.hourglasses[s], model.features[s], model.heatmap_heads[s], model.coord_heads[s],
                    model.merge_features[s], model.merge_heatmaps[s]]
    return modules


def batchnorm_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Every BatchNorm layer of ``model`` (for ``freeze_bn_stats``: kept in eval mode while training,
    they normalise with, and keep, the running statistics the model was loaded with)."""
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def freeze(modules: list[torch.nn.Module]) -> None:
    """No gradients for these modules' parameters, and their BatchNorm layers in eval mode (their running
    statistics are part of what the start does well); call `keep_frozen_eval` after each ``train()``."""
    for m in modules:
        m.requires_grad_(False)
    keep_frozen_eval(modules)


def keep_frozen_eval(modules: list[torch.nn.Module]) -> None:
    for m in modules:
        m.eval()
