"""AlexNet adapted to 32x32 inputs (five convs, three linear layers)."""

from __future__ import annotations

import torch
from torch import nn

from condensa.zoo.common import scaled


class AlexNet(nn.Module):
    """AlexNet for 32x32 images, as commonly used on CIFAR-10.

    Args:
        width: multiplier of every layer's channels and hidden units.
        in_channels: input channels.
        num_classes: output classes.
        dropout: dropout before the linear layers.

    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        in_channels: int = 3,
        num_classes: int = 10,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        c = [scaled(v, width) for v in (64, 192, 384, 256, 256)]
        hidden = scaled(4096, width)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c[0], 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c[0], c[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c[4] * 2 * 2, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, C, 32, 32)` -> `(N, num_classes)`."""
        return self.classifier(self.features(x).flatten(1))
