"""Direct compression, and direct compression followed by masked fine-tuning."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from condensa.compress import compress
from condensa.errors import ConfigError, check_int
from condensa.optim.distill import Distillation
from condensa.optim.result import CompressionResult, Selector, TrainingDivergedError
from condensa.optim.trainer import NonFiniteLossError, Trainer, train_options
from condensa.schemes import Scheme


class DC:
    """Direct compression: π once, evaluated when a trainer is given.

    Deterministic: the same model and scheme always give the same compressed model, so
    a search never measures one sparsity twice with it.
    """

    deterministic: ClassVar[bool] = True

    def __init__(self, trainer: Trainer | None = None, *, metric: str = "accuracy") -> None:
        self.trainer = trainer
        self.selector = Selector(metric)

    def compress(self, model: nn.Module, scheme: Scheme) -> CompressionResult:
        """The directly compressed copy, with its validation metrics when available."""
        compressed = compress(model, scheme)
        if self.trainer is None:
            return CompressionResult(compressed)
        metrics = self.trainer.evaluate(compressed)
        record = {"iteration": 0.0, **{f"val_{k}": float(v) for k, v in metrics.items()}}
        return CompressionResult(compressed, [record], self.selector.score(metrics), 0)


class FineTune:
    """Direct compression, then training with the masks held fixed.

    Args:
        trainer: runs the training; masks are parametrizations, so pruned weights stay
            zero whatever its optimizer does.
        steps: total fine-tuning steps.
        lr_rewinding: train with the trainer's full learning rate and schedule (LR
            rewinding, Renda et al. 2020) instead of the usual small fine-tuning LR.
        finetune_lr_scale: LR multiplier without rewinding (default 0.1).
        evaluations: split the steps into this many chunks, evaluate after each and
            return the best (default 1: the final model).
        metric, higher_is_better: the validation metric that picks the best.
        seed: ``torch.manual_seed(seed + chunk)`` before each chunk.
        distill: learn from the uncompressed model (see
            :class:`~condensa.optim.distill.Distillation`).

    """

    def __init__(
        self,
        trainer: Trainer,
        *,
        steps: int = 2000,
        lr_rewinding: bool = False,
        finetune_lr_scale: float = 0.1,
        evaluations: int = 1,
        metric: str = "accuracy",
        higher_is_better: bool | None = None,
        seed: int = 0,
        distill: Distillation | None = None,
    ) -> None:
        check_int("steps", steps)
        if not isinstance(evaluations, int) or not 1 <= evaluations <= steps:
            raise ConfigError(f"evaluations must be an integer in [1, steps], got {evaluations!r}")
        if not finetune_lr_scale > 0:
            raise ConfigError(f"finetune_lr_scale must be positive, got {finetune_lr_scale!r}")
        if distill is not None and not isinstance(distill, Distillation):
            raise ConfigError(f"distill must be a Distillation or None, got {distill!r}")
        train_options(trainer, distiller=None if distill is None else True)
        self.distill = distill
        self.trainer = trainer
        self.steps = steps
        self.lr_scale = 1.0 if lr_rewinding else float(finetune_lr_scale)
        self.evaluations = evaluations
        self.selector = Selector(metric, higher_is_better)
        self.seed = seed

    def compress(self, model: nn.Module, scheme: Scheme) -> CompressionResult:
        """DC, then fine-tune; returns the best evaluated model (``model`` untouched)."""
        compressed = compress(model, scheme)
        metrics = self.trainer.evaluate(compressed)
        history = [
            {"iteration": 0.0, "steps": 0.0, **{f"val_{k}": float(v) for k, v in metrics.items()}}
        ]
        best_score = self.selector.score(metrics)
        best_state = {k: v.clone() for k, v in compressed.state_dict().items()}
        best_iteration = 0
        chunks = [self.steps // self.evaluations] * self.evaluations
        chunks[-1] += self.steps - sum(chunks)
        done = 0
        distiller = None if self.distill is None else self.distill.bind(model)
        options = train_options(self.trainer, distiller=distiller)
        for i, chunk in enumerate(chunks, start=1):
            torch.manual_seed(self.seed + i)
            try:
                loss = self.trainer.train(compressed, chunk, lr_scale=self.lr_scale, **options)
            except NonFiniteLossError as exc:
                compressed.load_state_dict(best_state)
                raise TrainingDivergedError(
                    f"fine-tuning chunk {i} diverged ({exc}); the best model so far is in .result",
                    CompressionResult(compressed, history, best_score, best_iteration),
                ) from None
            done += chunk
            metrics = self.trainer.evaluate(compressed)
            score = self.selector.score(metrics)
            history.append(
                {
                    "iteration": float(i),
                    "steps": float(done),
                    "train_loss": loss,
                    **{f"val_{k}": float(v) for k, v in metrics.items()},
                }
            )
            # the last chunk wins ties: later models are at least as trained
            if self.selector.better(score, best_score) or score == best_score:
                best_score, best_iteration = score, i
                best_state = {k: v.clone() for k, v in compressed.state_dict().items()}
        compressed.load_state_dict(best_state)
        return CompressionResult(compressed, history, best_score, best_iteration)
