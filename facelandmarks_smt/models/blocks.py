"""Building blocks of SMT-Net: Bulat's multi-scale residual block and a Newell hourglass."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _bn_relu_conv(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
    )


class MultiScaleBlock(nn.Module):
    """Hierarchical, parallel, multi-scale residual block (Bulat & Tzimiropoulos, ICCV 2017).

    Three chained pre-activation 3x3 convs produce C/2, C/4 and C/4 channels; their outputs are
    concatenated (C channels, receptive fields 3, 5 and 7) and added to the identity, or to a
    pre-activation 1x1 conv of the input when the channel count changes.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        if cout % 4:
            raise ValueError(f"MultiScaleBlock output channels must be divisible by 4, got {cout}")
        self.conv1 = _bn_relu_conv(cin, cout // 2, 3)
        self.conv2 = _bn_relu_conv(cout // 2, cout // 4, 3)
        self.conv3 = _bn_relu_conv(cout // 4, cout // 4, 3)
        self.shortcut = nn.Identity() if cin == cout else _bn_relu_conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        b = self.conv2(a)
        c = self.conv3(b)
        return torch.cat([a, b, c], dim=1) + self.shortcut(x)


class Hourglass(nn.Module):
    """Newell hourglass of a given depth, widening to ``inner`` channels on the way down.

    ``forward`` returns the output (same size and ``width`` channels as the input) and the centre
    feature map (the lowest resolution, ``inner`` channels), which feeds the coordinate head.
    """

    def __init__(self, depth: int, width: int, inner: int) -> None:
        super().__init__()
        self.skip = MultiScaleBlock(width, width)
        self.down = MultiScaleBlock(width, inner)
        if depth > 1:
            self.inner: nn.Module = Hourglass(depth - 1, inner, inner)
        else:
            self.inner = MultiScaleBlock(inner, inner)
        self.up = MultiScaleBlock(inner, width)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.skip(x)
        low = self.down(F.max_pool2d(x, 2))
        if isinstance(self.inner, Hourglass):
            low, centre = self.inner(low)
        else:
            low = self.inner(low)
            centre = low
        low = self.up(low)
        return skip + F.interpolate(low, scale_factor=2.0, mode="nearest"), centre
