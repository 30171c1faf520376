"""ResNet-20/32/56 for 32x32 inputs (He et al. 2016, CIFAR variant)."""

from __future__ import annotations

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.zoo.common import scaled


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (1x1 conv-BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-(6n+2): three stages of ``n`` basic blocks with 16/32/64 channels.

    Args:
        depth: 20, 32, 56, ... (``(depth - 2) % 6 == 0``).
        width: channel multiplier.
        in_channels: input channels.
        num_classes: output classes.

    """

    def __init__(
        self, depth: int = 56, *, width: float = 1.0, in_channels: int = 3, num_classes: int = 10
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ConfigError(f"ResNet depth must be 6n+2 (20, 32, 56, ...), got {depth!r}")
        n = (depth - 2) // 6
        widths = [scaled(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                blocks.append(BasicBlock(c_in, c_out, stride=2 if stage > 0 and i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, C, 32, 32)` -> `(N, num_classes)`."""
        x = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
