"""A small training abstraction: the Trainer protocol and a supervised default."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from condensa.errors import CondensaError, ConfigError

ExtraLoss = Callable[[], torch.Tensor]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@runtime_checkable
class Trainer(Protocol):
    """What compression methods need from training code.

    ``train`` runs ``steps`` mini-batch steps on ``model`` (adding ``extra_loss()`` to
    the task loss when given) and returns the mean training loss; ``evaluate``
    returns metrics where larger ``"accuracy"`` / smaller ``"loss"`` is better.
    """

    def train(self, model: nn.Module, steps: int, *, extra_loss: ExtraLoss | None = None) -> float:
        """Train ``model`` in place for ``steps`` steps."""
        ...

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Metrics of ``model`` on held-out data."""
        ...


def _cycle(loader: Iterable) -> Iterator:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ConfigError("the training loader yields no batches")


class SupervisedTrainer:
    """Classification training over DataLoaders with a fresh optimizer per call.

    Args:
        train_loader: yields ``(inputs, targets)`` batches.
        val_loader: the same, for :meth:`evaluate`.
        optimizer: factory ``params -> torch.optim.Optimizer`` (default: Adam, lr 1e-3).
        loss_fn: task loss (default cross-entropy).
        seed: seeds ``torch`` before each :meth:`train` call for reproducibility, or None.

    """

    def __init__(
        self,
        train_loader: Iterable,
        val_loader: Iterable,
        *,
        optimizer: OptimizerFactory | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        seed: int | None = 0,
    ) -> None:
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.optimizer = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
        self.loss_fn = loss_fn or nn.functional.cross_entropy
        self.seed = seed

    def train(self, model: nn.Module, steps: int, *, extra_loss: ExtraLoss | None = None) -> float:
        """Run ``steps`` steps; raises :class:`CondensaError` on a non-finite loss."""
        if not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        if self.seed is not None:
            torch.manual_seed(self.seed)
        device = next(model.parameters()).device
        optimizer = self.optimizer(model.parameters())
        model.train()
        total = 0.0
        batches = _cycle(self.train_loader)
        for step in range(steps):
            inputs, targets = next(batches)
            inputs, targets = inputs.to(device), targets.to(device)
            loss = self.loss_fn(model(inputs), targets)
            if extra_loss is not None:
                loss = loss + extra_loss()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise CondensaError(f"non-finite training loss {value} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += value
        return total / steps

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``{"loss": mean loss, "accuracy": top-1 fraction}`` on the validation loader."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        for inputs, targets in self.val_loader:
            inputs, targets = inputs.to(device), targets.to(device)
            logits = model(inputs)
            loss_sum += float(self.loss_fn(logits, targets, reduction="sum"))  # type: ignore[call-arg]
            correct += int((logits.argmax(dim=1) == targets).sum())
            count += len(targets)
        model.train(was_training)
        if count == 0:
            raise ConfigError("the validation loader yields no samples")
        return {"loss": loss_sum / count, "accuracy": correct / count}
