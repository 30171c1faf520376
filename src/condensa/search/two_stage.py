"""The paper's search in one dimension: locate the accuracy level set, then maximize.

Stage 1 (level set): a GP on the margin ``accuracy - threshold`` and the implicit
level-set UCB acquisition, restricted to where GP sample paths place the *largest*
feasible sparsity. Stage 2 (objective): GP-UCB on the objective over the sparsities
the accuracy GP deems feasible with probability >= ``feasible_probability``. Every
trial updates both GPs. The search stops early when the level set is located to
``level_set_tolerance`` and no feasible point can beat the best trial by more than
``objective_tolerance``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from condensa.errors import ConfigError
from condensa.search.acquisition import ils_ucb, probability_feasible, ucb
from condensa.search.constraint import Constraint
from condensa.search.result import SurrogateView
from condensa.search.surrogate import (
    DTYPE,
    LevelSet,
    fit_gp,
    largest_feasible,
    posterior,
    single_thread,
)
from condensa.search.trial import Trial


@dataclass(frozen=True)
class TwoStageSettings:
    """Settings of the 1-D search (defaults measured in ``benchmarks/search_efficiency.py``).

    Attributes:
        initial: initial trials, one uniformly drawn in each of ``initial`` equal
            slices of the bounds.
        gamma: ILS-UCB exploitation weight in ``[0, 1]``.
        beta: confidence multiplier of both acquisitions.
        level_set_tolerance: stage 1 is done when the posterior std of the largest
            feasible sparsity is below this (sparsity units).
        objective_tolerance: stage 2 is done when no candidate's UCB beats the best
            feasible trial by this fraction of the objective's observed range.
        feasible_probability: stage-2 candidates must be feasible with this probability.
        reserve: evaluations kept for stage 2 at the end of the budget when it still
            promises improvement.
        grid: candidate grid size; ``samples``: GP sample paths for the level set.
        decreasing: exploit that accuracy usually falls with sparsity: the level set
            sought is the end of the first feasible run. With False, the largest
            feasible sparsity anywhere (slower to pin down, correct for any shape).

    """

    initial: int = 3
    gamma: float = 0.9
    beta: float = 2.0
    level_set_tolerance: float = 0.004
    objective_tolerance: float = 0.01
    feasible_probability: float = 0.8
    reserve: int = 2
    grid: int = 201
    samples: int = 128
    decreasing: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma must lie in [0, 1], got {self.gamma!r}")
        if self.initial < 1 or self.grid < 3 or self.samples < 8:
            raise ConfigError("initial >= 1, grid >= 3 and samples >= 8 are required")
        if not 0.0 < self.feasible_probability < 1.0:
            raise ConfigError(
                f"feasible_probability must lie in (0, 1), got {self.feasible_probability!r}"
            )


def clip_margin(margin: torch.Tensor) -> torch.Tensor:
    """Clip margins to ``[-c, c]``, ``c`` twice the smaller extreme margin.

    ``c`` is twice the smaller of the largest positive and the largest negative margin.

    Accuracy collapses far past the level set (0.92 -> 0.3), and a stationary GP fitted
    to such a cliff becomes uncertain everywhere; clipping keeps every sign (so the
    level set is unchanged) while making the function the GP sees smooth near it.
    """
    positive, negative = margin[margin > 0], margin[margin < 0]
    if len(positive) == 0 or len(negative) == 0:
        return margin
    c = 2.0 * min(float(positive.max()), float(-negative.min()))
    return margin.clamp(-c, c)


class TwoStage:
    """Proposes the next sparsity from the trials so far (deterministic given the seed)."""

    def __init__(
        self,
        bounds: tuple[float, float],
        constraint: Constraint,
        settings: TwoStageSettings,
        seed: int,
    ) -> None:
        self.low, self.high = bounds
        self.constraint = constraint
        self.settings = settings
        self.seed = seed
        self.grid = torch.linspace(0.0, 1.0, settings.grid, dtype=DTYPE).unsqueeze(-1)  # (m, 1)
        rng = np.random.default_rng(seed)
        k = settings.initial
        self.initial_points = [(i + rng.uniform(0.15, 0.85)) / k for i in range(k)]

    # unit interval <-> sparsity
    def to_sparsity(self, u: float) -> float:
        """Map ``u`` in [0, 1] to the bounds."""
        return self.low + u * (self.high - self.low)

    def to_unit(self, s: float) -> float:
        """Map a sparsity to [0, 1]."""
        return (s - self.low) / (self.high - self.low)

    def _data(self, trials: list[Trial]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ok = [t for t in trials if not t.failed]
        x = torch.tensor([[self.to_unit(float(t.sparsity))] for t in ok], dtype=DTYPE)  # type: ignore[arg-type]
        margin = torch.tensor([self.constraint.margin(t.accuracy) for t in ok], dtype=DTYPE)  # type: ignore[arg-type]
        objective = torch.tensor([t.objective for t in ok], dtype=DTYPE)
        return x, clip_margin(margin), objective

    def propose(self, trials: list[Trial]) -> tuple[float, str] | None:
        """The next sparsity and its stage, or None to stop (the answer is certain)."""
        with single_thread():
            return self._propose(trials)

    def _propose(self, trials: list[Trial]) -> tuple[float, str] | None:
        n = len(trials)
        if n < len(self.initial_points):
            return self.to_sparsity(self.initial_points[n]), "initial"
        x, margin, objective = self._data(trials)
        torch.manual_seed(self.seed + n)
        blocked = self._blocked(trials)
        if len(x) < 2:
            free = [
                u for u in np.linspace(0, 1, 11) if not blocked[round(u * (len(self.grid) - 1))]
            ]
            return self.to_sparsity(float(free[n % len(free)] if free else 0.5)), "initial"
        acc_gp, obj_gp = fit_gp(x, margin), fit_gp(x, objective)
        acc = posterior(acc_gp, self.grid)
        level = largest_feasible(
            acc_gp,
            self.grid,
            self.settings.samples,
            self.seed + n,
            decreasing=self.settings.decreasing,
            start=self._known_feasible(x, acc.mean),
        )
        remaining = self._budget_left
        level_point = self._level_set_point(acc.mean, acc.std, level, blocked)
        objective_point = self._objective_point(obj_gp, acc.mean, acc.std, trials, blocked, level)
        if level_point is not None and (
            objective_point is None or remaining > self.settings.reserve
        ):
            return self.to_sparsity(level_point), "level-set"
        if objective_point is not None:
            return self.to_sparsity(objective_point), "objective"
        return None

    _budget_left = math.inf

    def set_budget_left(self, remaining: int) -> None:
        """Tell the proposer how many evaluations remain (it reserves some for stage 2)."""
        self._budget_left = remaining

    def _known_feasible(self, x: torch.Tensor, mean: torch.Tensor) -> int:
        """Grid index of the largest trial whose denoised margin (posterior mean) is >= 0."""
        m = len(self.grid) - 1
        indices = [round(float(u) * m) for u in x[:, 0]]
        feasible = [i for i in indices if float(mean[i]) >= 0]
        return max(feasible) if feasible else 0

    def _blocked(self, trials: list[Trial]) -> torch.Tensor:
        """Grid points next to failed trials (never proposed again)."""
        blocked = torch.zeros(len(self.grid), dtype=torch.bool)
        for t in trials:
            if t.failed:
                blocked |= (self.grid[:, 0] - self.to_unit(float(t.sparsity))).abs() < 0.01  # type: ignore[arg-type]
        return blocked

    def _level_set_point(
        self, mean: torch.Tensor, std: torch.Tensor, level: LevelSet, blocked: torch.Tensor
    ) -> float | None:
        s = self.settings
        tolerance = s.level_set_tolerance / (self.high - self.low)
        u = self.grid[:, 0]
        if level.p_feasible < 0.05:
            # believed infeasible everywhere: probe where feasibility is most plausible
            score = ucb(mean, std, beta=s.beta)
            if float(score.max()) < 0:
                return None  # certain: nothing can meet the constraint
            return float(u[int(torch.where(blocked, -math.inf, score).argmax())])
        certain = level.std <= tolerance and level.p_feasible > 0.95
        if certain:
            return None
        window = (u >= level.low - 2 * tolerance) & (u <= level.high + 2 * tolerance) & ~blocked
        if not bool(window.any()):
            return None
        score = torch.where(window, ils_ucb(mean, std, gamma=s.gamma, beta=s.beta), -math.inf)
        return float(u[int(score.argmax())])

    def _objective_point(
        self,
        obj_gp: Any,
        mean: torch.Tensor,
        std: torch.Tensor,
        trials: list[Trial],
        blocked: torch.Tensor,
        level: LevelSet,
    ) -> float | None:
        s = self.settings
        candidates = (probability_feasible(mean, std) >= s.feasible_probability) & ~blocked
        if s.decreasing and level.p_feasible > 0:
            candidates &= self.grid[:, 0] <= level.high  # nothing feasible past the level set
        if not bool(candidates.any()):
            return None
        post = posterior(obj_gp, self.grid)
        score = torch.where(candidates, ucb(post.mean, post.std, beta=s.beta), -math.inf)
        ok = [t for t in trials if not t.failed]
        observed = [float(t.objective) for t in ok]  # type: ignore[arg-type]
        spread = (max(observed) - min(observed)) or 1.0
        feasible = [float(t.objective) for t in ok if t.feasible]  # type: ignore[arg-type]
        incumbent = max(feasible) if feasible else -math.inf
        if float(score.max()) <= incumbent + s.objective_tolerance * spread:
            return None
        return float(self.grid[int(score.argmax()), 0])

    def view(
        self, trials: list[Trial]
    ) -> tuple[SurrogateView | None, LevelSet | None, torch.Tensor | None]:
        """The final posteriors on the grid (in sparsity units), the level set, and P(feasible)."""
        with single_thread():
            return self._view(trials)

    def _view(
        self, trials: list[Trial]
    ) -> tuple[SurrogateView | None, LevelSet | None, torch.Tensor | None]:
        x, margin, objective = self._data(trials)
        if len(x) < 2:
            return None, None, None
        torch.manual_seed(self.seed + len(trials))
        acc_gp, obj_gp = fit_gp(x, margin), fit_gp(x, objective)
        acc, obj = posterior(acc_gp, self.grid), posterior(obj_gp, self.grid)
        level = largest_feasible(
            acc_gp,
            self.grid,
            self.settings.samples,
            self.seed + len(trials),
            decreasing=self.settings.decreasing,
            start=self._known_feasible(x, acc.mean),
        )
        p = probability_feasible(acc.mean, acc.std)
        if self.settings.decreasing and level.p_feasible > 0:
            p = torch.where(self.grid[:, 0] <= level.high, p, torch.zeros_like(p))
        sign = -1.0 if self.constraint.lower_is_better else 1.0
        to_accuracy = lambda m: (self.constraint.threshold + sign * m).tolist()  # noqa: E731
        low, high = acc.mean - 2 * acc.std, acc.mean + 2 * acc.std
        view = SurrogateView(
            grid=[self.to_sparsity(float(u)) for u in self.grid[:, 0]],
            accuracy_mean=to_accuracy(acc.mean),
            accuracy_low=to_accuracy(low if sign > 0 else high),
            accuracy_high=to_accuracy(high if sign > 0 else low),
            objective_mean=obj.mean.tolist(),
            objective_low=(obj.mean - 2 * obj.std).tolist(),
            objective_high=(obj.mean + 2 * obj.std).tolist(),
            feasible_probability=p.tolist(),
        )
        return view, level, p
