"""SMT-Net: two stacked hourglasses, each with a heatmap head and a coordinate-residual head."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .blocks import Hourglass, MultiScaleBlock


class CoordinateHead(nn.Module):
    """Hourglass centre features -> FC -> FC -> 2L sub-pixel residuals (heatmap pixels).

    The last layer starts at zero so an untrained head adds nothing to the argmax.
    """

    def __init__(self, in_features: int, hidden: int, num_landmarks: int) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, 2 * num_landmarks)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, centre: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(centre.flatten(1)))
        return self.fc2(x).view(-1, self.num_landmarks, 2)


class Stem(nn.Module):
    """7x7/2 conv -> block -> 2x2 pool -> three blocks: 256x256x3 to 64x64xC."""

    def __init__(self, width: int) -> None:
        super().__init__()
        c1, c2 = max(width // 4, 16), width // 2
        self.conv = nn.Conv2d(3, c1, 7, stride=2, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(c1)
        self.block1 = MultiScaleBlock(c1, c2)
        self.pool = nn.MaxPool2d(2)
        self.block2 = MultiScaleBlock(c2, c2)
        self.block3 = MultiScaleBlock(c2, c2)
        self.block4 = MultiScaleBlock(c2, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = self.pool(self.block1(x))
        return self.block4(self.block3(self.block2(x)))


class SMTNet(nn.Module):
    """Stacked Multi-Target Network (Yang et al., CVPR-W 2019), configured by ``ModelConfig``.

    ``forward`` takes normalised NCHW crops and returns one ``(heatmaps, residuals)`` pair per
    stack: heatmap logits ``(B, L, H/4, W/4)`` and residuals ``(B, L, 2)`` in heatmap pixels.
    Each stack's output is merged back into the next stack's input as in Newell et al.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, L = config.width, config.num_landmarks
        self.stem = Stem(c)
        self.hourglasses = nn.ModuleList()
        self.features = nn.ModuleList()
        self.heatmap_heads = nn.ModuleList()
        self.coord_heads = nn.ModuleList()
        self.merge_features = nn.ModuleList()
        self.merge_heatmaps = nn.ModuleList()
        centre_features = config.inner_width * config.centre_size ** 2
        for s in range(config.num_stacks):
            self.hourglasses.append(Hourglass(config.hourglass_depth, c, config.inner_width))
            self.features.append(nn.Sequential(
                MultiScaleBlock(c, c),
                nn.Conv2d(c, c, 1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ))
            self.heatmap_heads.append(nn.Conv2d(c, L, 1))
            self.coord_heads.append(CoordinateHead(centre_features, config.coord_hidden, L))
            if s < config.num_stacks - 1:
                self.merge_features.append(nn.Conv2d(c, c, 1))
                self.merge_heatmaps.append(nn.Conv2d(L, c, 1))

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every stack's ``(heatmaps, residuals)``; the last stack's is the prediction."""
        return self._stacks(x, last_heads=True)

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stack's inputs to its heads, ``(features, centre)``: all of the network but
        `last_heads`. A runtime that cannot keep single layers in fp32 (OpenVINO's bf16) runs this
        part in low precision and the heads in fp32 (see `forward`'s note on the heads)."""
        return self._stacks(x, last_heads=False)

    def last_heads(self, features: torch.Tensor, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stack's ``(heatmaps, residuals)`` from `trunk`'s outputs, in fp32."""
        return self._heads(len(self.hourglasses) - 1, features, centre)

    def _heads(self, s: int, features: torch.Tensor, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The heads run in fp32 even under bf16/fp16 autocast: bf16 rounding of the heatmap
        # logits moves the argmax of ~20 % of the landmarks (ties go to the lowest index), which
        # biases both the decoded points and the coordinate head's residual target.
        with torch.autocast(features.device.type, enabled=False):
            return self.heatmap_heads[s](features.float()), self.coord_heads[s](centre.float())

    def _stacks(self, x: torch.Tensor, last_heads: bool):
        size = self.config.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
            raise ValueError(f"SMTNet expects input of shape (B, 3, {size}, {size}), got {tuple(x.shape)}")
        x = self.stem(x)
        outputs = []
        for s in range(self.config.num_stacks):
            hg, centre = self.hourglasses[s](x)
            feats = self.features[s](hg)
            if s == self.config.num_stacks - 1 and not last_heads:
                return feats, centre
            heatmaps, residuals = self._heads(s, feats, centre)
            outputs.append((heatmaps, residuals))
            if s < self.config.num_stacks - 1:
                x = x + self.merge_features[s](feats) + self.merge_heatmaps[s](heatmaps)
        return outputs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
