"""VGG with BatchNorm for 32x32 inputs (the CIFAR variant: one linear classifier)."""

from __future__ import annotations

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.zoo.common import scaled

CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}  # fmt: skip


class VGG(nn.Module):
    """VGG-11/16/19 with BatchNorm: conv-BN-ReLU stacks, five max-pools, linear head.

    Args:
        depth: 11, 16 or 19.
        width: channel multiplier.
        in_channels: input channels.
        num_classes: output classes.

    """

    def __init__(
        self, depth: int = 19, *, width: float = 1.0, in_channels: int = 3, num_classes: int = 10
    ) -> None:
        super().__init__()
        if depth not in CONFIGS:
            raise ConfigError(f"VGG depth must be one of {sorted(CONFIGS)}, got {depth!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for item in CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = scaled(int(item), width)
                layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
                channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, C, 32, 32)` -> `(N, num_classes)`."""
        return self.classifier(self.features(x).flatten(1))
