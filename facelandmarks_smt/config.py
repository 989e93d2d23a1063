"""Model configuration: one dataclass that fully describes an SMT-Net and its pre-/post-processing.

The config travels inside every weights file (as safetensors metadata), so a file alone rebuilds
its model and the exact crop/normalisation it was trained with.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and I/O settings of an SMT-Net.

    ``width`` is the channel count of the stem output and hourglass skip/up path, ``inner_width``
    the count on the hourglass's way down (the paper: 256 -> 512 -> 256).
    """

    num_landmarks: int = 68
    width: int = 256
    inner_width: int = 512
    num_stacks: int = 2
    hourglass_depth: int = 4
    coord_hidden: int = 256
    input_size: int = 256
    heatmap_stride: int = 4
    crop_factor: float = 1.6
    theta: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scheme: str = "300w-68"
    name: str = "paper"
    training_data_licence: str = "unspecified"

    def __post_init__(self) -> None:
        def check(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"invalid ModelConfig: {msg}")

        check(isinstance(self.num_landmarks, int) and self.num_landmarks >= 1,
              f"num_landmarks must be a positive int, got {self.num_landmarks!r}")
        check(self.width >= 8 and self.width % 4 == 0, f"width must be a multiple of 4 >= 8, got {self.width}")
        check(self.inner_width >= 8 and self.inner_width % 4 == 0,
              f"inner_width must be a multiple of 4 >= 8, got {self.inner_width}")
        check(self.num_stacks >= 1, f"num_stacks must be >= 1, got {self.num_stacks}")
        check(self.hourglass_depth >= 1, f"hourglass_depth must be >= 1, got {self.hourglass_depth}")
        check(self.heatmap_stride == 4, "heatmap_stride must be 4 (the stem downsamples by 4)")
        check(self.input_size % (self.heatmap_stride * 2 ** self.hourglass_depth) == 0,
              f"input_size {self.input_size} must be divisible by 4 * 2**hourglass_depth")
        check(self.crop_factor > 1.0, f"crop_factor must be > 1, got {self.crop_factor}")
        check(self.theta > 0, f"theta must be > 0, got {self.theta}")
        check(len(self.mean) == 3 and len(self.std) == 3 and all(s > 0 for s in self.std),
              "mean and std need 3 values each, std > 0")
        # Normalise sequences to tuples so configs compare equal after a JSON round trip.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def heatmap_size(self) -> int:
        return self.input_size // self.heatmap_stride

    @property
    def centre_size(self) -> int:
        """Side of the hourglass centre (lowest-resolution) feature map."""
        return self.heatmap_size // 2 ** self.hourglass_depth

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"model config is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ValueError("model config JSON must be an object")
        return cls.from_dict(d)


PRESETS: dict[str, ModelConfig] = {
    # The paper's network (SPEC.md): 256 channels, 512 inside the hourglass.
    "paper": ModelConfig(name="paper", width=256, inner_width=512, coord_hidden=256),
    # CPU-friendly: half the widths, same topology.
    "small": ModelConfig(name="small", width=128, inner_width=256, coord_hidden=256),
    # Smallest useful network, for laptops and quick experiments.
    "tiny": ModelConfig(name="tiny", width=64, inner_width=128, coord_hidden=128),
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """A named preset (``paper``, ``small``, ``tiny``) with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown model config {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]
    return cfg.replace(**overrides) if overrides else cfg
