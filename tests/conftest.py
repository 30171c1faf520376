"""Tiny seeded models shared by the tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyCNN(nn.Module):
    """conv -> BN -> ReLU -> conv -> ReLU -> flatten -> linear -> ReLU -> linear, for 1x8x8."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def make_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 4)
    )


@pytest.fixture
def cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN()


@pytest.fixture
def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return make_mlp()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A deep copy of the state dict, to check a model was not modified."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
