"""Gradual magnitude pruning (Zhu & Gupta 2017), for every scheme.

Sparsity follows the cubic schedule from 0 to the scheme's sparsity ``s_f``::

    s_t = s_f · (1 − (1 − (t − t0) / (t1 − t0))³)     for t0 <= t <= t1

and the masks are recomputed every ``frequency`` steps from the weights as the
forward pass sees them (what was pruned scores zero, so it stays pruned). Training
runs on in one call of the trainer, so its optimizer state and learning-rate
schedule run across mask updates; after ``t1`` the masks are fixed at the scheme's
own plan (the exact target sparsity) and the remaining steps fine-tune.

A scheme with several parts is scaled part by part (:func:`condensa.schemes.scaling.scaled`):
quantization and N:M apply in full from the start.
"""

from __future__ import annotations

from typing import ClassVar, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from condensa.errors import ConfigError, check_int
from condensa.masking import Mask, apply_plan, bake, masks
from condensa.optim.distill import Distillation
from condensa.optim.result import CompressionResult, Selector, TrainingDivergedError
from condensa.optim.trainer import NonFiniteLossError, Trainer, train_options
from condensa.schemes import Scheme
from condensa.schemes.scaling import scaled


def cubic_fraction(step: int, start: int, end: int) -> float:
    """Fraction of the final sparsity reached at ``step`` on the cubic schedule."""
    if step <= start:
        return 0.0
    if step >= end:
        return 1.0
    progress = (step - start) / (end - start)
    return 1.0 - (1.0 - progress) ** 3


def _mask_modules(model: nn.Module) -> dict[str, Mask]:
    """``{tensor fqn: its single Condensa mask}``."""
    out: dict[str, Mask] = {}
    for module_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name, plist in module.parametrizations.items():
            found = [p for p in plist if isinstance(p, Mask)]
            if len(found) > 1:
                raise ConfigError(
                    f"{module_name}.{tensor_name} carries {len(found)} masks; gradual pruning "
                    "needs one pruning step per tensor"
                )
            if found:
                out[f"{module_name}.{tensor_name}" if module_name else tensor_name] = found[0]
    return out


class GMP:
    """Gradual magnitude pruning, then fine-tuning, in one budget of steps.

    Args:
        trainer: runs the training; its ``train`` must accept ``step_callback`` (the
            built-in trainers do). Give it a decaying ``schedule`` (cosine): the late
            steps then fine-tune at a small learning rate.
        steps: total training steps (pruning and fine-tuning).
        start: fraction of ``steps`` before pruning begins (``t0``).
        end: fraction of ``steps`` where the final sparsity is reached (``t1``).
        frequency: steps between mask updates (default: 20 updates over the ramp).
        evaluations: after ``t1``, evaluate this many times, evenly spaced to the last
            step, and return the best (default 1: the final model).
        distill: learn from the uncompressed model (see :class:`Distillation`).
        metric, higher_is_better: the validation metric that picks the best.
        seed: ``torch.manual_seed(seed)`` before training.

    Example:
        >>> GMP(trainer, steps=6000).compress(model, Prune(0.98))  # doctest: +SKIP

    """

    deterministic: ClassVar[bool] = False

    def __init__(
        self,
        trainer: Trainer,
        *,
        steps: int = 2000,
        start: float = 0.0,
        end: float = 0.7,
        frequency: int | None = None,
        evaluations: int = 1,
        distill: Distillation | None = None,
        metric: str = "accuracy",
        higher_is_better: bool | None = None,
        seed: int = 0,
    ) -> None:
        check_int("steps", steps)
        if not (isinstance(start, (int, float)) and isinstance(end, (int, float))):
            raise ConfigError(f"start and end must be fractions, got {start!r}, {end!r}")
        if not 0.0 <= start < end <= 1.0:
            raise ConfigError(f"need 0 <= start < end <= 1, got start={start!r}, end={end!r}")
        self.t0, self.t1 = round(start * steps), max(round(end * steps), 1)
        if self.t1 <= self.t0:
            raise ConfigError(f"steps={steps} leaves no room for a pruning ramp")
        if frequency is None:
            frequency = max(1, (self.t1 - self.t0) // 20)
        check_int("frequency", frequency)
        tail = steps - self.t1
        if not isinstance(evaluations, int) or not 1 <= evaluations <= max(tail, 1):
            raise ConfigError(
                f"evaluations must be an integer in [1, {max(tail, 1)}] (steps after the "
                f"ramp), got {evaluations!r}"
            )
        if distill is not None and not isinstance(distill, Distillation):
            raise ConfigError(f"distill must be a Distillation or None, got {distill!r}")
        train_options(trainer, step_callback=lambda done: None)
        self.trainer, self.steps, self.frequency = trainer, steps, frequency
        self.evaluations, self.distill = evaluations, distill
        self.selector = Selector(metric, higher_is_better)
        self.seed = seed

    def schedule(self) -> list[tuple[int, float]]:
        """``(step, fraction of the final sparsity)`` at every mask update, in order."""
        points = list(range(self.t0, self.t1, self.frequency)) + [self.t1]
        return [(t, cubic_fraction(t, self.t0, self.t1)) for t in points]

    def compress(self, model: nn.Module, scheme: Scheme) -> CompressionResult:
        """Prune ``model``'s copy gradually to ``scheme``; ``model`` is not modified.

        Raises:
            ConfigError: the scheme selects nothing, or its sparsity cannot be scaled.
            TrainingDivergedError: a non-finite loss (``.result`` is None: no model
                reached the target sparsity).

        """
        live = bake(model)
        apply_plan(live, scheme.plan(live))  # the parametrizations of the final model
        mask_of = _mask_modules(live)
        if not mask_of:
            raise ConfigError(f"scheme {scheme!r} prunes no tensor of {type(model).__name__}")
        _unprune(live, model, mask_of)
        updates = dict(self.schedule())
        if 0 in updates:
            self._update(live, scheme, updates.pop(0), mask_of)
        evaluate_at = _spaced(self.t1, self.steps, self.evaluations)
        history: list[dict[str, float]] = []
        scores: list[float] = []  # parallel to history
        best_state: dict[str, torch.Tensor] = {}

        def on_step(done: int) -> None:
            if done in updates:
                self._update(live, scheme, updates[done], mask_of)
            if done in evaluate_at:
                metrics = self.trainer.evaluate(live)
                score = self.selector.score(metrics)
                record = {
                    "iteration": float(len(history) + 1),
                    "steps": float(done),
                    "sparsity": _sparsity(mask_of),
                    **{f"val_{k}": float(v) for k, v in metrics.items()},
                }
                incumbent = self._best(scores)
                history.append(record)
                scores.append(score)
                # a later model ties in its favour: it is at least as trained
                if incumbent is None or not self.selector.better(scores[incumbent], score):
                    best_state.clear()
                    best_state.update(_state(live))

        distiller = None if self.distill is None else self.distill.bind(model)
        torch.manual_seed(self.seed)
        try:
            loss = self.trainer.train(
                live,
                self.steps,
                **train_options(self.trainer, distiller=distiller, step_callback=on_step),
            )
        except NonFiniteLossError as exc:
            raise TrainingDivergedError(f"gradual pruning diverged ({exc})", None) from None
        history[-1]["train_loss"] = loss  # the last step is always evaluated
        live.load_state_dict(best_state)
        best = self._best(scores)
        assert best is not None
        return CompressionResult(live, history, scores[best], best + 1)

    def _best(self, scores: list[float]) -> int | None:
        """Index of the best score, the latest among equals (None when empty)."""
        best: int | None = None
        for i, score in enumerate(scores):
            if best is None or not self.selector.better(scores[best], score):
                best = i
        return best

    @staticmethod
    @torch.no_grad()
    def _update(live: nn.Module, scheme: Scheme, fraction: float, mask_of: dict[str, Mask]) -> None:
        """Recompute every mask for ``scheme`` at ``fraction`` of its sparsity, in place."""
        step_model = bake(live)  # ranks the weights as the forward pass sees them
        apply_plan(step_model, scaled(scheme, fraction).plan(step_model))
        new = masks(step_model)
        extra = sorted(set(new) - set(mask_of))
        if extra:
            raise ConfigError(
                f"at {fraction:.0%} of its sparsity the scheme prunes {extra}, which the full "
                "scheme does not; gradual pruning needs the same targets at every step"
            )
        for fqn, module in mask_of.items():
            if fqn in new:
                module.mask.copy_(new[fqn])
            else:
                module.mask.fill_(True)


@torch.no_grad()
def _unprune(live: nn.Module, model: nn.Module, mask_of: dict[str, Mask]) -> None:
    """All masks to keep-everything and the stored values back to ``model``'s (dense start)."""
    reference = bake(model)
    for fqn, module in mask_of.items():
        module.mask.fill_(True)
        module_name, _, tensor_name = fqn.rpartition(".")
        owner = live.get_submodule(module_name)
        plist = cast(nn.ModuleDict, owner.parametrizations)[tensor_name]
        cast(torch.Tensor, plist.original).copy_(reference.get_parameter(fqn))


def _sparsity(mask_of: dict[str, Mask]) -> float:
    total = sum(m.mask.numel() for m in mask_of.values())
    return sum(int((~m.mask).sum()) for m in mask_of.values()) / total


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _spaced(first: int, last: int, count: int) -> set[int]:
    """``count`` steps evenly spaced in ``(first, last]``, ``last`` always included."""
    if count == 1 or last <= first:
        return {last}
    return {first + round((last - first) * (i + 1) / count) for i in range(count)}
