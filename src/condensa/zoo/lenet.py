"""LeNet-300-100 (MLP) and LeNet-5 (CNN) for MNIST-sized images."""

from __future__ import annotations

import torch
from torch import nn

from condensa.zoo.common import scaled


class LeNet300100(nn.Module):
    """The fully connected LeNet-300-100: `(N, C, H, W)` -> `(N, num_classes)`.

    Args:
        width: multiplier of the 300/100 hidden units.
        in_channels: input channels.
        num_classes: output classes.
        input_size: image side (28 for MNIST, 32 when padded).

    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
    ) -> None:
        super().__init__()
        h1, h2 = scaled(300, width), scaled(100, width)
        self.fc1 = nn.Linear(in_channels * input_size * input_size, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten, then three linear layers with ReLU."""
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max pooling: two 5x5 convs and three linear layers.

    Args:
        width: multiplier of the 6/16 filters and 120/84 units.
        in_channels: input channels.
        num_classes: output classes.
        input_size: image side (28: the first conv pads by 2; 32: no padding).

    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
    ) -> None:
        super().__init__()
        c1, c2 = scaled(6, width), scaled(16, width)
        pad = 2 if input_size == 28 else 0
        side = ((input_size + 2 * pad - 4) // 2 - 4) // 2  # conv5, pool2, conv5, pool2
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=pad)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * side * side, scaled(120, width))
        self.fc2 = nn.Linear(scaled(120, width), scaled(84, width))
        self.fc3 = nn.Linear(scaled(84, width), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(N, C, S, S)` -> `(N, num_classes)`."""
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))
