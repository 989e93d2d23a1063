"""Kernel-radius (sigma) schedules of SPEC.md: temporal stages or per-stack (spatial) sigmas."""

from __future__ import annotations

from .config import TrainConfig


def stack_sigmas(cfg: TrainConfig, stage: int) -> list[float]:
    """The Gaussian sigma of each stack's target in training stage ``stage``.

    temporal: every stack uses ``sigmas[stage]``; spatial: stack s uses ``sigmas[0] - s*delta``;
    fixed: every stack uses ``sigmas[0]``.
    """
    n = cfg.model.num_stacks
    if cfg.sigma_mode == "temporal":
        s = cfg.sigmas[min(stage, len(cfg.sigmas) - 1)]
        return [s] * n
    if cfg.sigma_mode == "spatial":
        return [cfg.sigmas[0] - i * cfg.spatial_delta for i in range(n)]
    return [cfg.sigmas[0]] * n


def num_stages(cfg: TrainConfig) -> int:
    return len(cfg.sigmas) if cfg.sigma_mode == "temporal" else 1


def stage_end_epoch(cfg: TrainConfig, stage: int, stage_start_epoch: int) -> int:
    """Epoch (exclusive) at which a stage that began at ``stage_start_epoch`` ends by length."""
    if cfg.sigma_mode != "temporal":
        return cfg.epochs
    if stage >= len(cfg.sigmas) - 1:
        return cfg.epochs
    if stage < len(cfg.stage_epochs):
        return min(cfg.epochs, stage_start_epoch + cfg.stage_epochs[stage])
    return cfg.epochs


def stage_time_limit(cfg: TrainConfig, stage: int, budget_seconds: float | None) -> float | None:
    """Elapsed seconds at which the stage ends under a time budget (None: no time rule)."""
    if budget_seconds is None or not cfg.stage_time_fractions or cfg.sigma_mode != "temporal":
        return None
    if stage >= len(cfg.sigmas) - 1:
        return None
    return budget_seconds * sum(cfg.stage_time_fractions[: stage + 1])
