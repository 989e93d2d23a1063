"""Training configuration: one dataclass, loadable from YAML or TOML, the paper's settings default.

Presets: ``paper`` (the paper's network and schedule), ``small`` (128/256 widths, sized for a CPU),
``tiny`` (quick experiments and tests). A config file may name a preset in ``base`` and override
any field; nested ``model`` and ``augment`` tables override the model and augmentation fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ModelConfig, get_config
from .augment import AugmentConfig


@dataclass
class TrainConfig:
    """Everything a training run needs besides data paths and the output folder."""

    model: ModelConfig = field(default_factory=lambda: get_config("paper"))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    heatmap_loss: str = "bice_softmax"
    coord_weight: float = 1.0
    # Kernel radius schedule (SPEC "Kernel radius schedule"): temporal sigma 4 -> 3 -> 2, each
    # stage continuing from the previous stage's best checkpoint.
    sigma_mode: str = "temporal"  # temporal | spatial | fixed
    sigmas: tuple[float, ...] = (4.0, 3.0, 2.0)
    spatial_delta: float = 1.0
    # A stage ends after stage_epochs[i] epochs, or when the validation NME has not improved for
    # plateau_patience epochs, or (with a time budget) after stage_time_fractions[i] of it.
    stage_epochs: tuple[int, ...] = (120, 80, 40)
    plateau_patience: int = 0  # 0: off
    stage_time_fractions: tuple[float, ...] = ()
    epochs: int = 240
    batch_size: int = 16
    optimizer: str = "adam"
    lr: float = 1e-2
    weight_decay: float = 5e-4
    lr_milestones: tuple[int, ...] = (120, 200)
    lr_gamma: float = 0.1
    # With a time budget (--max-minutes): also multiply the lr by lr_gamma once each of these
    # fractions of the budget has passed (a schedule that fits whatever throughput the machine
    # gives; such a run is resumable but its lr then depends on wall-clock time).
    lr_milestone_fractions: tuple[float, ...] = ()
    warmup_steps: int = 0
    grad_clip: float = 0.0  # 0: off
    ema_decay: float = 0.0  # 0: off
    # EMA warm-up: decay min(ema_decay, (1 + n) / (10 + n)) after n updates, so that a run from
    # random weights does not validate an average still dominated by the initialisation.
    ema_warmup: bool = False
    # Distillation (only with a teacher, ``--teacher``): each stack's heatmap loss is
    # (1 - distill_weight) * loss(Gaussian targets) + distill_weight * loss(the teacher's heatmaps).
    distill_weight: float = 0.5
    # Which training faces get the teacher's targets: "all", or "data": only the faces of --data, while
    # --extra-data (e.g. synthesized large poses) learns from its labels alone. A teacher that is good on
    # real faces then anchors them (against forgetting) without pulling the new faces back to its errors.
    distill_sources: str = "all"
    # What the teacher sees: "augmented", the student's own crop, or "clean": the same crop (same warp
    # and flip) without blur, colour, occlusion and degradations, so a teacher that is good on clean
    # faces teaches its clean answer as the target of the degraded crop instead of its degraded one.
    distill_input: str = "augmented"
    # A flip-test teacher: its heatmaps average its crop's and the mirrored crop's (mapped back with the
    # scheme's flip permutation), an ensemble of two views that is better than the teacher alone (small
    # v8 on the 300-W common set: 3.37 alone, 3.17 with the flip test), so a model can learn from itself.
    distill_flip: bool = False
    # Model selection with bars: a validation counts as the best so far only when each named part
    # of the validation set (``real``, an --extra-val-data folder's name, or ``all``) scores at most
    # this NME, e.g. {"real": 3.62} keeps a run on synthetic faces from trading away real ones.
    select_max_nme: dict[str, float] = field(default_factory=dict)
    # Fine-tuning with frozen early stages: the stem and the first freeze_stacks stacks (hourglass,
    # features, heads and the merge into the next stack) keep their loaded weights and BatchNorm
    # statistics; only the later stacks learn. Fewer weights that move, so a fine-tune on new kinds of
    # faces can change less of what the start does well (and each step is cheaper: no backward there).
    freeze_stacks: int = 0
    # Every BatchNorm layer normalises with the start's running statistics and keeps them (eval mode)
    # while all weights, BatchNorm's scale and shift included, learn. Measured on small v8: re-estimating
    # the statistics on the fine-tuning mix (augmented real + turned faces) alone, no weight changed,
    # cost the held-out real faces +0.05 NME, as much as whole fine-tunes lost (docs/training.md).
    freeze_bn_stats: bool = False
    precision: str = "auto"  # auto | fp32 | bf16 (CPU autocast) | fp16 (CUDA AMP)
    channels_last: bool = True
    val_fraction: float = 0.1
    val_batch_size: int = 32
    # Also validate (and checkpoint) every this many optimiser steps inside an epoch; 0: only at
    # epoch ends. Long epochs (big mixed sets, slow CPUs) otherwise give few candidates to select.
    val_every_steps: int = 0
    seed: int = 0
    num_workers: int = 1
    log_every: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig.from_dict(self.model)
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        self.sigmas = tuple(float(s) for s in self.sigmas)
        self.stage_epochs = tuple(int(e) for e in self.stage_epochs)
        self.stage_time_fractions = tuple(float(f) for f in self.stage_time_fractions)
        self.lr_milestones = tuple(int(m) for m in self.lr_milestones)
        self.lr_milestone_fractions = tuple(float(f) for f in self.lr_milestone_fractions)
        errors = []
        if self.sigma_mode not in ("temporal", "spatial", "fixed"):
            errors.append(f"sigma_mode must be temporal, spatial or fixed, got {self.sigma_mode!r}")
        if not self.sigmas or min(self.sigmas) <= 0:
            errors.append("sigmas must be a non-empty list of positive numbers")
        if self.sigma_mode == "temporal" and len(self.stage_epochs) < len(self.sigmas) and not self.plateau_patience:
            errors.append("temporal schedule needs one stage_epochs entry per sigma (or plateau_patience)")
        if self.stage_time_fractions and len(self.stage_time_fractions) != len(self.sigmas):
            errors.append("stage_time_fractions needs one entry per sigma")
        if self.sigma_mode == "spatial" and min(self.sigmas) - self.spatial_delta * (self.model.num_stacks - 1) <= 0:
            errors.append("spatial schedule gives a non-positive sigma for the last stack")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            errors.append(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if any(not 0.0 < f < 1.0 for f in self.lr_milestone_fractions):
            errors.append("lr_milestone_fractions must lie in (0, 1)")
        if self.optimizer not in ("adam", "adamw"):
            errors.append(f"optimizer must be adam or adamw, got {self.optimizer!r}")
        if self.batch_size < 1 or self.epochs < 1 or self.lr <= 0:
            errors.append("batch_size and epochs must be >= 1 and lr > 0")
        if self.distill_sources not in ("all", "data"):
            errors.append(f"distill_sources must be all or data, got {self.distill_sources!r}")
        if not isinstance(self.distill_flip, bool):
            errors.append(f"distill_flip must be true or false, got {self.distill_flip!r}")
        if self.distill_input not in ("augmented", "clean"):
            errors.append(f"distill_input must be augmented or clean, got {self.distill_input!r}")
        if not 0.0 <= self.distill_weight <= 1.0:
            errors.append(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        self.select_max_nme = {str(k): float(v) for k, v in dict(self.select_max_nme).items()}
        if any(not math.isfinite(v) or v <= 0 for v in self.select_max_nme.values()):
            errors.append("select_max_nme values must be positive NMEs")
        if isinstance(self.freeze_stacks, bool) or not isinstance(self.freeze_stacks, int) \
                or not 0 <= self.freeze_stacks < self.model.num_stacks:
            errors.append(f"freeze_stacks must be an integer in [0, {self.model.num_stacks - 1}] (the last stack "
                          f"always learns), got {self.freeze_stacks!r}")
        if not isinstance(self.freeze_bn_stats, bool):
            errors.append(f"freeze_bn_stats must be true or false, got {self.freeze_bn_stats!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            errors.append("ema_decay must be in [0, 1)")
        if self.val_every_steps < 0:
            errors.append("val_every_steps must be >= 0")
        if not 0.0 < self.val_fraction < 1.0:
            errors.append("val_fraction must be in (0, 1)")
        from .losses import HEATMAP_LOSSES

        if self.heatmap_loss not in HEATMAP_LOSSES:
            errors.append(f"heatmap_loss must be one of {sorted(HEATMAP_LOSSES)}, got {self.heatmap_loss!r}")
        if errors:
            raise ValueError("invalid TrainConfig: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return json.loads(json.dumps(d))  # tuples -> lists

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        base = d.pop("base", None)
        cfg = PRESETS[base]() if base else cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        model = d.pop("model", None)
        augment = d.pop("augment", None)
        if model is not None:
            if isinstance(model, str):
                d["model"] = get_config(model)
            else:
                model = dict(model)
                preset = model.pop("preset", None)
                start = get_config(preset) if preset else cfg.model
                d["model"] = start.replace(**model)
        if augment is not None:
            d["augment"] = dataclasses.replace(cfg.augment, **augment)
        merged = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)}
        merged.update(d)
        return cls(**merged)


def paper_config() -> TrainConfig:
    """The paper's settings (section 5.3): Adam 1e-2, wd 5e-4, drops at 120 and 200, sigma 4-3-2."""
    return TrainConfig()


def small_config() -> TrainConfig:
    """128/256 widths, a CPU-sized schedule and the recipe of the shipped weights (docs/training.md,
    measured): crop factor 1.2 (v5; 1.3 before), AdamW without weight decay, EMA, in-the-wild augmentation."""
    import dataclasses

    augment = dataclasses.replace(AugmentConfig(), scale=0.1, occlusion_prob=0.25, motion_blur_prob=0.1,
                                  color_prob=0.4, grey_prob=0.1, jpeg_prob=0.2)
    return TrainConfig(model=get_config("small", crop_factor=1.2), augment=augment, lr=1e-3, epochs=60,
                       stage_epochs=(30, 20, 10), lr_milestones=(40, 55), grad_clip=5.0, optimizer="adamw",
                       weight_decay=0.0, ema_decay=0.998)


def finetune_config() -> TrainConfig:
    """Fine-tuning trained weights on new annotations without destroying the start (issue #17, measured
    in docs/training.md): the final kernel radius (sigma 2) from the first step, a low learning rate
    (2e-4, x0.2 after 70 % of the epochs or of a --max-minutes budget) reached by a short warm-up,
    EMA of the weights, the small recipe's augmentation. With ``train --init`` and no ``--config``
    this is the default, and the model settings (widths, crop factor) come from the init weights."""
    import dataclasses

    base = small_config()
    return dataclasses.replace(base, lr=2e-4, sigma_mode="fixed", sigmas=(2.0,), epochs=20, stage_epochs=(20,),
                               lr_milestones=(14,), lr_milestone_fractions=(0.7,), lr_gamma=0.2,
                               warmup_steps=50, ema_decay=0.998)


def tiny_config() -> TrainConfig:
    return TrainConfig(model=get_config("tiny"), lr=1e-3, epochs=20, stage_epochs=(10, 6, 4),
                       lr_milestones=(15,), grad_clip=5.0, batch_size=8)


PRESETS = {"paper": paper_config, "small": small_config, "tiny": tiny_config, "finetune": finetune_config}


def load_train_config(name_or_path: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A preset name or a ``.yaml``/``.yml``/``.toml``/``.json`` file, then ``overrides``."""
    if name_or_path in PRESETS:
        d: dict[str, Any] = {"base": name_or_path}
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {name_or_path!r} is neither a preset "
                                    f"({', '.join(PRESETS)}) nor a file")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            import tomllib

            d = tomllib.loads(text)
        elif path.suffix == ".json":
            d = json.loads(text)
        else:
            raise ValueError(f"config file {path} must be .yaml, .yml, .toml or .json")
        if not isinstance(d, dict):
            raise ValueError(f"config file {path} must hold a mapping")
    d = dict(d)
    for k, v in (overrides or {}).items():
        if "." in k:
            top, sub = k.split(".", 1)
            existing = d.get(top)
            if isinstance(existing, str):
                existing = {"preset": existing}
            d[top] = {**(existing or {}), sub: v}
        else:
            d[k] = v
    return TrainConfig.from_dict(d)
