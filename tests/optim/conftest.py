from __future__ import annotations

import pytest
import torch
from torch import nn

from condensa.optim import SupervisedTrainer


def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(outputs, targets)


@pytest.fixture
def least_squares():
    """Correlated features, a 5-sparse-dominant truth: DC of the optimum is not optimal."""
    g = torch.Generator().manual_seed(0)
    n, d = 200, 20
    base = torch.randn(n, d, generator=g)
    x = base + 0.8 * base[:, :1]
    w_true = torch.cat(
        [torch.tensor([3.0, -2.0, 1.5, 1.0, -1.0]), 0.3 * torch.randn(d - 5, generator=g)]
    )
    y = (x @ w_true + 0.1 * torch.randn(n, generator=g)).unsqueeze(1)
    batches = [(x, y)]  # full-batch gradient descent: any iterable of batches works
    trainer = SupervisedTrainer(
        batches,
        batches,
        lr=0.05,
        optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr),
        loss_fn=mse,
        metrics=lambda o, t: {},
    )
    model = nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    return x, y, model, trainer


@pytest.fixture
def blobs_trainer():
    """A tiny separable 4-class problem and a trainer over fixed batches."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=g) * 3
    labels = torch.arange(4).repeat(64)
    x = centers[labels] + torch.randn(len(labels), 16, generator=g)
    batches = [(x[i : i + 32], labels[i : i + 32]) for i in range(0, len(labels), 32)]
    return SupervisedTrainer(batches, batches, lr=1e-2, schedule="cosine")
