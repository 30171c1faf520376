"""A small CNN for 8x8 images (the embedded default: scikit-learn digits)."""

from __future__ import annotations

import torch
from torch import nn

from condensa.zoo.common import scaled


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


class DigitsCNN(nn.Module):
    """Three conv blocks and two linear layers for `(N, C, 8, 8)` inputs.

    Args:
        width: channel multiplier (1.0 = 16/32/64 filters).
        in_channels: input channels.
        num_classes: output classes.

    """

    def __init__(self, *, width: float = 1.0, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2, c3 = (scaled(c, width) for c in (16, 32, 64))
        hidden = scaled(128, width)
        self.features = nn.Sequential(
            *_conv_block(in_channels, c1),
            *_conv_block(c1, c2),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            *_conv_block(c2, c3),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c3 * 4, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, C, 8, 8)` -> `(N, num_classes)` logits."""
        return self.classifier(self.features(x))
