"""The L-C (learning-compression) optimizer: augmented Lagrangian over a scheme.

Compression as ``min L(w) s.t. w = Δ(π(w))`` (Carreira-Perpiñán 2017; Condensa,
Joseph et al. 2019), alternating

- L step: train ``w`` on ``L(w) + μ/2 Σ ||w − θ − λ/μ||²`` (a loss term, so any
  ``torch.optim`` optimizer works; a fresh optimizer every iteration);
- C step: ``θ = Δ(π(w − λ/μ))`` with the scheme re-planned (masks may change);
- ``λ ← λ − μ (w − θ)``; ``μ = μ0 · a^(j−1)``, capped.

Iteration 0 skips the L step: it is direct compression. The compressed model with
the best validation score is returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from torch import nn

from condensa.errors import ConfigError, check_int
from condensa.masking import apply_plan, bake, copy_model, restore
from condensa.optim.distill import Distillation, Distiller
from condensa.optim.lc_schedule import MuSchedule, split_budget
from condensa.optim.lc_state import LCState
from condensa.optim.result import CompressionResult, Selector, TrainingDivergedError
from condensa.optim.trainer import NonFiniteLossError, Trainer, train_options
from condensa.schemes import Scheme


def _targets_of(model: nn.Module, fqns: list[str]) -> dict[str, nn.Parameter]:
    return {fqn: model.get_parameter(fqn) for fqn in fqns}


class LC:
    """The learning-compression optimizer.

    Args:
        trainer: a :class:`~condensa.optim.Trainer` (its ``train`` runs the L steps;
            give it a decaying ``schedule`` so the LR decays inside each L step).
        iterations: number of L-C iterations after the initial direct compression.
        steps: mini-batch steps of each L step; when neither it nor ``budget`` is
            given, the run's budget is :attr:`DEFAULT_BUDGET` steps.
        first_steps: steps of the first L step (default ``steps``); often longer.
        mu_init: μ of the first L step (``μ0``, default 1e-3 as released).
        mu_multiplier: ``a`` in ``μ_j = μ0 a^(j-1)`` (default 1.1), at least 1.
        mu_max: cap on μ.
        metric: validation metric that picks the best θ; ``higher_is_better`` its
            direction (inferred from the name when None).
        lr_scale: learning-rate multiplier passed to every L step.
        seed: ``torch.manual_seed(seed + j)`` before L step ``j``, so a resumed run
            repeats an uninterrupted one when the loaders draw from torch's RNG.
        checkpoint: path where the :class:`LCState` is saved after every iteration.
        callback: called with each iteration's history record.
        calibrate_batches: after each C step, re-estimate the compressed model's
            BatchNorm statistics on this many training batches when the trainer has a
            ``calibrate(model, batches)`` method (0: never). The L step trains the
            uncompressed w, so its BatchNorm statistics do not describe θ: with pruned
            filters the mismatch alone can take a CNN to chance accuracy.
        finetune_steps: after the last iteration, fine-tune the best θ with its masks
            fixed for this many steps (at ``finetune_lr_scale`` times the trainer's LR),
            kept when it validates at least as well; 0 returns θ as L-C left it.
            Short L-C runs leave θ untrained on its support; this closes that gap.
        budget: total training steps of the run (L steps and final fine-tuning). When
            given it overrides ``steps``/``first_steps``/``finetune_steps``:
            ``finetune_fraction`` of it fine-tunes θ at the end, the rest is split
            evenly over the L steps.
        finetune_fraction: share of ``budget`` for the final fine-tuning (default 0.2).
        mu_schedule: ``"adaptive"`` (default) grows μ after each iteration by the factor
            that, if ‖w − θ‖ falls like 1/μ, brings it under ``tolerance`` · ‖θ‖ by the
            last iteration (between 1 and ``mu_multiplier_max``); ``"geometric"`` is the
            paper's fixed ``μ0 · a^(j−1)``. The released geometric schedule needs ~30
            long L steps; under a short budget it leaves w far from θ.
        tolerance: target of ‖w − θ‖ / ‖θ‖ at the last iteration (adaptive schedule).
        mu_multiplier_max: largest per-iteration growth of the adaptive μ.
        distill: learn from the uncompressed model in every L step and in the final
            fine-tuning (see :class:`~condensa.optim.distill.Distillation`).

    Every iteration's history record holds ``mu``, ``distance`` (‖w − θ‖),
    ``relative_distance`` (over ‖θ‖), ``sparsity`` and θ's validation metrics
    (``val_*``): the convergence diagnostics.

    Example:
        >>> lc = LC(trainer, iterations=10, steps=500)
        >>> result = lc.compress(model, Prune(0.95))  # doctest: +SKIP
        >>> result.model, result.history  # doctest: +SKIP

    """

    DEFAULT_BUDGET = 2000
    """Training steps of a run that names neither ``steps`` nor ``budget``."""

    def __init__(
        self,
        trainer: Trainer,
        *,
        iterations: int = 10,
        steps: int | None = None,
        first_steps: int | None = None,
        mu_init: float = 1e-3,
        mu_multiplier: float = 1.1,
        mu_max: float = 1e4,
        metric: str = "accuracy",
        higher_is_better: bool | None = None,
        lr_scale: float = 1.0,
        seed: int = 0,
        checkpoint: str | Path | None = None,
        callback: Callable[[dict[str, float]], None] | None = None,
        calibrate_batches: int = 20,
        finetune_steps: int = 0,
        finetune_lr_scale: float = 0.3,
        budget: int | None = None,
        finetune_fraction: float = 0.2,
        mu_schedule: str = "adaptive",
        tolerance: float = 1e-2,
        mu_multiplier_max: float = 10.0,
        distill: Distillation | None = None,
    ) -> None:
        if (
            isinstance(finetune_steps, bool)
            or not isinstance(finetune_steps, int)
            or finetune_steps < 0
        ):
            raise ConfigError(f"finetune_steps must be an integer >= 0, got {finetune_steps!r}")
        if (
            isinstance(calibrate_batches, bool)
            or not isinstance(calibrate_batches, int)
            or calibrate_batches < 0
        ):
            raise ConfigError(
                f"calibrate_batches must be an integer >= 0, got {calibrate_batches!r}"
            )
        check_int("iterations", iterations)
        check_int("steps", steps, optional=True)
        check_int("first_steps", first_steps, optional=True)
        if not isinstance(trainer, Trainer):
            raise ConfigError(f"trainer must implement train() and evaluate(), got {trainer!r}")
        self.schedule = MuSchedule(
            iterations, mu_schedule, mu_init, mu_multiplier, mu_max, tolerance, mu_multiplier_max
        )
        if distill is not None and not isinstance(distill, Distillation):
            raise ConfigError(f"distill must be a Distillation or None, got {distill!r}")
        train_options(trainer, distiller=None if distill is None else True)
        if budget is None and steps is None:
            budget = self.DEFAULT_BUDGET
        if budget is not None:
            steps, first_steps, finetune_steps = split_budget(budget, iterations, finetune_fraction)
        assert steps is not None
        self.trainer = trainer
        self.iterations = iterations
        self.steps = steps
        self.first_steps = steps if first_steps is None else first_steps
        self.selector = Selector(metric, higher_is_better)
        self.lr_scale = lr_scale
        self.seed = seed
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.callback = callback
        self.calibrate_batches = calibrate_batches
        self.finetune_steps, self.finetune_lr_scale = finetune_steps, float(finetune_lr_scale)
        self.distill = distill

    def mu(self, iteration: int) -> float:
        """μ of iteration ``iteration`` on the geometric schedule (0 for direct compression)."""
        return self.schedule.geometric(iteration)

    def next_mu(self, iteration: int, history: list[dict[str, float]]) -> float:
        """μ of ``iteration`` given the records before it (see :class:`MuSchedule`)."""
        return self.schedule.at(iteration, history)

    def compress(
        self, model: nn.Module, scheme: Scheme, *, state: LCState | None = None
    ) -> CompressionResult:
        """Run L-C from ``model`` (or resume from ``state``); ``model`` is not modified.

        Returns:
            A :class:`CompressionResult`: the best compressed model (masks attached),
            the history, and the final :class:`LCState` in ``.state``.

        Raises:
            ConfigError: the scheme selects nothing, or bad settings.
            TrainingDivergedError: a non-finite loss; ``.result`` holds the best so far.

        """
        w_model = bake(model)
        fqns = scheme.plan(w_model).fqns
        if not fqns:
            raise ConfigError(f"scheme {scheme!r} selects no tensor of {type(model).__name__}")
        params = _targets_of(w_model, fqns)
        best_model: nn.Module | None = None
        if state is None:
            start, history = 0, []
            theta: dict[str, torch.Tensor] = {}
            lam = {f: torch.zeros_like(p) for f, p in params.items()}
            best_score: float | None = None
            best_iteration, best_state = 0, {}
        else:
            w_model.load_state_dict(state.weights)
            start, history = state.iteration, list(state.history)
            theta, lam = dict(state.theta), dict(state.multipliers)
            best_score, best_iteration, best_state = (
                state.best_score,
                state.best_iteration,
                state.best_state,
            )
            best_model = restore(bake(model), best_state)

        distiller = None if self.distill is None else self.distill.bind(model)
        for j in range(start, self.iterations + 1):
            mu = self.next_mu(j, history)
            record: dict[str, float] = {"iteration": float(j), "mu": mu}
            if j > 0:
                penalty = _penalty(params, theta, lam, mu)
                torch.manual_seed(self.seed + j)
                try:
                    record["train_loss"] = self.trainer.train(
                        w_model,
                        self.first_steps if j == 1 else self.steps,
                        extra_loss=penalty,
                        lr_scale=self.lr_scale,
                        **train_options(self.trainer, distiller=distiller),
                    )
                except NonFiniteLossError as exc:
                    partial = (
                        None
                        if best_model is None
                        else CompressionResult(best_model, history, best_score, best_iteration)
                    )
                    raise TrainingDivergedError(
                        f"L-C iteration {j} diverged ({exc}); the best model so far is in .result",
                        partial,
                    ) from None
                record["penalty"] = float(penalty().detach())
            compressed = self._c_step(w_model, scheme, params, lam, mu)
            calibrate = getattr(self.trainer, "calibrate", None)
            if self.calibrate_batches and calibrate is not None:
                calibrate(compressed, self.calibrate_batches)
            theta = {f: _forward_value(compressed, f) for f in fqns}
            if mu > 0:
                lam = {f: lam[f] - mu * (params[f].detach() - theta[f]) for f in fqns}
            metrics = self.trainer.evaluate(compressed)
            score = self.selector.score(metrics)
            zeros = sum(int((t == 0).sum()) for t in theta.values())
            record.update({f"val_{k}": float(v) for k, v in metrics.items()})
            record["sparsity"] = zeros / sum(t.numel() for t in theta.values())
            record["distance"] = math.sqrt(
                sum(float((params[f].detach() - theta[f]).pow(2).sum()) for f in fqns)
            )
            theta_norm = math.sqrt(sum(float(t.pow(2).sum()) for t in theta.values()))
            record["relative_distance"] = record["distance"] / max(theta_norm, 1e-12)
            if self.selector.better(score, best_score):
                best_model, best_score, best_iteration = compressed, score, j
                best_state = {k: v.detach().clone() for k, v in compressed.state_dict().items()}
            history.append(record)
            state = LCState(
                iteration=j + 1,
                mu=mu,
                weights={k: v.detach().clone() for k, v in w_model.state_dict().items()},
                theta=theta,
                multipliers=lam,
                best_state=best_state,
                best_score=float(score if best_score is None else best_score),
                best_iteration=best_iteration,
                history=history,
            )
            if self.checkpoint is not None:
                state.save(self.checkpoint)
            if self.callback is not None:  # after the save: an interrupt loses nothing
                self.callback(record)
        assert best_model is not None and best_score is not None  # iteration 0 always runs
        if self.finetune_steps:
            best_model, best_score, best_iteration = self._polish(
                best_model, best_score, best_iteration, history, distiller
            )
        return CompressionResult(best_model, history, best_score, best_iteration, state)

    def _polish(
        self,
        model: nn.Module,
        score: float,
        iteration: int,
        history: list[dict[str, float]],
        distiller: Distiller | None,
    ) -> tuple[nn.Module, float, int]:
        """Masked fine-tuning of the best θ; kept only when it validates at least as well."""
        tuned = copy_model(model)
        torch.manual_seed(self.seed + self.iterations + 1)
        loss = self.trainer.train(
            tuned,
            self.finetune_steps,
            lr_scale=self.finetune_lr_scale,
            **train_options(self.trainer, distiller=distiller),
        )
        metrics = self.trainer.evaluate(tuned)
        tuned_score = self.selector.score(metrics)
        record = {
            "iteration": float(self.iterations + 1),
            "finetune_steps": float(self.finetune_steps),
            "train_loss": loss,
            **{f"val_{k}": float(v) for k, v in metrics.items()},
        }
        history.append(record)
        if self.callback is not None:
            self.callback(record)
        if self.selector.better(tuned_score, score) or tuned_score == score:
            return tuned, tuned_score, self.iterations + 1
        return model, score, iteration

    @staticmethod
    def _c_step(
        w_model: nn.Module,
        scheme: Scheme,
        params: dict[str, nn.Parameter],
        lam: dict[str, torch.Tensor],
        mu: float,
    ) -> nn.Module:
        """θ = Δ(π(w − λ/μ)) as a compressed copy of ``w_model`` (scheme re-planned)."""
        compressed = copy_model(w_model)
        if mu > 0:
            with torch.no_grad():
                for fqn, p in params.items():
                    compressed.get_parameter(fqn).copy_(p - lam[fqn] / mu)
        apply_plan(compressed, scheme.plan(compressed))
        return compressed


def _forward_value(model: nn.Module, fqn: str) -> torch.Tensor:
    """The tensor ``fqn`` as the forward pass sees it (masks applied), detached."""
    module_name, _, name = fqn.rpartition(".")
    value = getattr(model.get_submodule(module_name), name)
    return cast(torch.Tensor, value).detach().clone()


def _penalty(
    params: dict[str, nn.Parameter],
    theta: dict[str, torch.Tensor],
    lam: dict[str, torch.Tensor],
    mu: float,
) -> Callable[[], torch.Tensor]:
    """``μ/2 Σ ||w − θ − λ/μ||²`` as a closure over the live parameters."""

    def term() -> torch.Tensor:
        total = sum((p - theta[f] - lam[f] / mu).pow(2).sum() for f, p in params.items())
        return 0.5 * mu * total  # type: ignore[return-value]

    return term
