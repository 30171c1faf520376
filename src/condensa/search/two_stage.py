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
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from condensa.errors import ConfigError
from condensa.search.acquisition import (
    boundary_can_win,
    ils_ucb,
    locating_index,
    probability_feasible,
    ucb,
)
from condensa.search.batch import believed_trial, shared_noise
from condensa.search.bracket import boundary_point, bracket, margins
from condensa.search.choice import choose, measured_feasibility
from condensa.search.gp_data import GPData, gp_data
from condensa.search.lookahead import last_measurement
from condensa.search.proposer import Answer, Proposal, SearchProblem, register_strategy
from condensa.search.result import SurrogateView
from condensa.search.settings import TwoStageSettings
from condensa.search.surrogate import (
    DTYPE,
    GridPosterior,
    LevelSet,
    fit_gp,
    largest_feasible,
    noisy_objective,
    posterior,
    single_thread,
)
from condensa.search.trial import Point, Trial

__all__ = ["TwoStage", "TwoStageSettings"]


@register_strategy("two-stage")
class TwoStage:
    """The paper's two stages as a proposer (deterministic given the seed).

    Args:
        problem: one sparsity dimension; ``problem.settings`` a :class:`TwoStageSettings`.

    """

    def __init__(self, problem: SearchProblem) -> None:
        if problem.dimensions != 1:
            raise ConfigError(
                f"strategy 'two-stage' searches one sparsity; this problem has "
                f"{problem.dimensions} (use 'bo')"
            )
        settings = problem.settings if problem.settings is not None else TwoStageSettings()
        if not isinstance(settings, TwoStageSettings):
            raise ConfigError(f"two-stage settings must be TwoStageSettings, got {settings!r}")
        self.problem = problem
        self.low, self.high = problem.bounds[0]
        self.constraint = problem.constraint
        self.settings = settings
        self.seed = problem.seed
        self.grid = torch.linspace(0.0, 1.0, settings.grid, dtype=DTYPE).unsqueeze(-1)  # (m, 1)
        rng = np.random.default_rng(self.seed)
        k = settings.initial
        self.initial_points = [(i + rng.uniform(0.15, 0.85)) / k for i in range(k)]

    # unit interval <-> sparsity
    def to_sparsity(self, u: float) -> float:
        """Map ``u`` in [0, 1] to the bounds."""
        return self.low + u * (self.high - self.low)

    def to_unit(self, s: float) -> float:
        """Map a sparsity to [0, 1]."""
        return (s - self.low) / (self.high - self.low)

    def _fit(self, data: GPData, n: int) -> tuple[Any, Any, LevelSet]:
        torch.manual_seed(self.seed + n)
        acc_gp = fit_gp(data.x, data.margin, data.margin_noise, exact=self.problem.deterministic)
        obj_gp = fit_gp(data.x, data.objective, data.objective_noise, trend=True)
        acc = posterior(acc_gp, self.grid)
        level = largest_feasible(
            acc_gp,
            self.grid,
            self.settings.samples,
            self.seed + n,
            decreasing=self.settings.decreasing,
            start=self._known_feasible(data.x, acc.mean),
        )
        return acc_gp, obj_gp, level

    def propose(self, trials: Sequence[Trial], *, budget_left: int, q: int = 1) -> list[Proposal]:
        """The next sparsity (one per call), or ``[]`` when the answer is certain."""
        with single_thread():
            proposal = self._propose(list(trials), budget_left)
        return [] if proposal is None else [proposal]

    def _propose(self, trials: list[Trial], budget_left: int) -> Proposal | None:
        n = len(trials)
        if n < len(self.initial_points):
            return Proposal(self.to_sparsity(self.initial_points[n]), "initial")
        seen = self._seen(trials)
        data = gp_data(seen, self.to_unit, self.constraint.margin)
        blocked = self._blocked(seen)
        if len(data.x) < 2:
            m = len(self.grid) - 1
            free = [u for u in np.linspace(0, 1, 11) if not blocked[round(u * m)]]
            return Proposal(
                self.to_sparsity(float(free[n % len(free)] if free else 0.5)), "initial"
            )
        acc_gp, obj_gp, level = self._fit(data, n)
        acc = posterior(acc_gp, self.grid)
        blocked |= self._dominated(data, acc.mean, acc.std)
        level_point = self._level_set_point(acc.mean, acc.std, level, blocked)
        obj = posterior(obj_gp, self.grid)
        matters = self._boundary_matters(obj, acc, level)
        # a noisy objective whose peak lies credibly inside is located (else GP-UCB)
        locate = not matters and noisy_objective(obj_gp, data.objective, data.objective_noise)
        objective_point = self._objective_point(
            obj, acc, data, blocked, level, obj_gp=obj_gp, n=n, budget_left=budget_left,
            locate=locate,
        )  # fmt: skip
        if level_point is not None and objective_point is not None and not matters:
            level_point = None
        choice = None
        if level_point is not None and (
            objective_point is None or budget_left > self.settings.reserve
        ):
            choice = Proposal(self.to_sparsity(level_point), "level-set")
        elif objective_point is not None:
            choice = Proposal(self.to_sparsity(objective_point), "objective")
        if self.problem.deterministic:  # exact feasibility: refine the bracketed boundary
            return self._refined(data, choice)
        if choice is not None and budget_left > 1:
            return choice
        # the last reading: the proposal (first), any open point with P >= 0.2, or a replicate
        open_ = (probability_feasible(acc.mean, acc.std) >= 0.2) & ~blocked
        if self.settings.decreasing and level.p_feasible > 0:
            open_ &= self.grid[:, 0] <= level.high
        first = [] if choice is None else [self.to_unit(float(choice.point))]  # type: ignore[arg-type]
        points = torch.cat([torch.tensor(first, dtype=DTYPE).reshape(-1, 1), self.grid[open_]])
        return self._last(data, acc_gp, obj_gp, points, choice)

    def _boundary_matters(self, post: GridPosterior, acc: GridPosterior, level: LevelSet) -> bool:
        """Whether the optimum may lie at the boundary (always, for a monotone objective)."""
        if self.problem.monotone or level.p_feasible < 0.05:
            return True
        u = self.grid[:, 0]
        band = (u >= level.low) & (u <= level.high)
        credible = probability_feasible(acc.mean, acc.std) >= self.settings.feasible_probability
        inside = credible & (u < level.low)
        return boundary_can_win(post.mean, post.std, band, inside, beta=self.settings.beta)

    def _refined(self, data: GPData, choice: Proposal | None) -> Proposal | None:
        """The bracket's refinement where the boundary decides.

        It replaces a level-set point, a point past the last feasible trial, or any point
        when the objective is monotone.
        """
        point = boundary_point(data.trials, self.constraint.margin, self.high - self.low)
        last = max((float(t.sparsity) for t in data.trials if t.feasible), default=math.inf)  # type: ignore[arg-type]
        if point is None or not (
            self.problem.monotone or choice is None or choice.stage == "level-set"
            or float(choice.point) > last  # type: ignore[arg-type]
        ):  # fmt: skip
            return choice
        return Proposal(point, "level-set")

    def _last(
        self, data: GPData, acc_gp: Any, obj_gp: Any, points: torch.Tensor,
        choice: Proposal | None,
    ) -> Proposal | None:  # fmt: skip
        """The best last reading: ``points`` or a replicate (:mod:`~condensa.search.lookahead`)."""
        index, trial = last_measurement(acc_gp, obj_gp, data, points,
                                        credible=self.settings.feasible_probability,
                                        monotone=self.problem.monotone,
                                        replicates=self.settings.replicates,
                                        answer=self._choose(data, acc_gp, obj_gp)[0])  # fmt: skip
        if trial is not None:
            return Proposal(trial.sparsity, "replicate", replicate=True)
        if index is None or (choice is not None and index == 0):
            return choice
        return Proposal(self.to_sparsity(float(points[index, 0])), "objective")

    def _seen(self, trials: Sequence[Trial]) -> list[Trial]:
        """The known points (:attr:`SearchProblem.known`) followed by the trials."""
        return [*self.problem.known, *trials]

    def _known_feasible(self, x: torch.Tensor, mean: torch.Tensor) -> int:
        """Grid index of the largest trial whose denoised margin (posterior mean) is >= 0."""
        m = len(self.grid) - 1
        indices = [round(float(u) * m) for u in x[:, 0]]
        feasible = [i for i in indices if float(mean[i]) >= 0]
        return max(feasible) if feasible else 0

    def _blocked(self, trials: list[Trial]) -> torch.Tensor:
        """Grid points near evaluated or failed trials (never proposed again, bar replicates)."""
        blocked = torch.zeros(len(self.grid), dtype=torch.bool)
        radius = max(self.settings.min_distance / (self.high - self.low), 1e-9)
        for t in trials:
            near = (self.grid[:, 0] - self.to_unit(float(t.sparsity))).abs()  # type: ignore[arg-type]
            blocked |= near < (max(radius, 0.01) if t.failed else radius)
        return blocked

    def _dominated(self, data: GPData, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """With a monotone objective, everything below a credibly feasible trial."""
        dominated = torch.zeros(len(self.grid), dtype=torch.bool)
        if not self.problem.monotone:
            return dominated
        p = probability_feasible(mean, std)
        m = len(self.grid) - 1
        credible = [
            float(u)
            for u, t in zip(data.x[:, 0], data.trials, strict=True)
            if t.feasible and float(p[round(float(u) * m)]) >= 0.5
        ]
        if credible:
            dominated |= self.grid[:, 0] < max(credible)
        return dominated

    def _choose(
        self, data: GPData, acc_gp: Any, obj_gp: Any
    ) -> tuple[int | None, str, list[int], str]:
        """The answer's index in ``data.trials``, why the best measured lost, and more.

        The candidates and the caution, as :func:`~condensa.search.choice.choose` returns them.
        """
        level = 0.0 if self.problem.deterministic else self.settings.feasible_probability
        measured = measured_feasibility(data.trials, self.constraint.margin)
        return choose(data.trials, data.x, acc_gp, obj_gp, level, monotone=self.problem.monotone,
                      measured=measured)  # fmt: skip

    def believe(self, trials: Sequence[Trial], point: Point) -> Trial | None:
        """The Kriging believer for batch rounds: the surrogates' means at ``point``."""
        with single_thread():
            data = gp_data(self._seen(trials), self.to_unit, self.constraint.margin)
            if len(data.x) < 2:
                return None
            acc_gp, obj_gp, _ = self._fit(data, len(trials))
            x = torch.tensor([[self.to_unit(float(point))]], dtype=DTYPE)  # type: ignore[arg-type]
            margin = float(posterior(acc_gp, x).mean[0])
            objective = float(posterior(obj_gp, x).mean[0])
        return believed_trial(len(trials), point, margin, objective, self.constraint, self.seed,
                              shared_noise(data.trials))  # fmt: skip

    def answer(self, trials: Sequence[Trial]) -> Answer:
        """The chosen trial, ``s_acc`` and the posteriors on the grid (for plots)."""
        with single_thread():
            data = gp_data(self._seen(trials), self.to_unit, self.constraint.margin)
            if len(data.x) < 2:
                feasible = [t for t in data.trials if t.feasible and not t.known]
                best = max(feasible, key=lambda t: (t.objective, -t.index)) if feasible else None
                return Answer(None if best is None else best.index)
            acc_gp, obj_gp, level = self._fit(data, len(trials))
            chosen, why, candidates, caution = self._choose(data, acc_gp, obj_gp)
            s_acc = s_acc_std = None
            if level.p_feasible > 0:
                s_acc = self.to_sparsity(level.mean)
                s_acc_std = level.std * (self.high - self.low)
            return Answer(
                None if chosen is None else data.trials[chosen].index,
                s_acc,
                s_acc_std,
                self._view(data, acc_gp, obj_gp, level),
                {"candidates": [data.trials[i].index for i in candidates],
                 **({"passed_over": why} if why else {}),
                 **({"caution": caution} if caution else {})},
            )  # fmt: skip

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
        post: GridPosterior,
        acc: GridPosterior,
        data: GPData,
        blocked: torch.Tensor,
        level: LevelSet,
        *,
        obj_gp: Any,
        n: int,
        budget_left: int,
        locate: bool,
    ) -> float | None:
        s, u = self.settings, self.grid[:, 0]
        mean, std = acc.mean, acc.std
        ok = data.trials
        if self.problem.deterministic:  # exact: below the bracket P >= 0.5, inside it anything
            gap = bracket(margins(ok, self.constraint.margin))
            candidates = probability_feasible(mean, std) >= 0.5
            if gap is not None:
                low, high = self.to_unit(gap.low), self.to_unit(gap.high)
                candidates = (candidates & (u <= low)) | ((u > low) & (u < high))
        else:
            candidates = probability_feasible(mean, std) >= s.feasible_probability
            if s.decreasing and level.p_feasible > 0:
                candidates &= u <= level.high  # nothing feasible past the level set
        region = candidates.clone()  # where the optimum may lie, evaluated points included
        candidates &= ~blocked
        if not bool(candidates.any()):
            return None
        if locate:
            if budget_left <= 1:  # the answer is an evaluated point: measure the estimated optimum
                return float(u[int(torch.where(candidates, post.mean, -math.inf).argmax())])
            generator = torch.Generator().manual_seed(self.seed + n)
            return float(u[locating_index(obj_gp, self.grid, region, candidates, generator)])
        score = torch.where(candidates, ucb(post.mean, post.std, beta=s.beta), -math.inf)
        observed = [float(t.objective) for t in ok]  # type: ignore[arg-type]
        spread = (max(observed) - min(observed)) or 1.0
        m = len(self.grid) - 1
        feasible = [  # denoised: the posterior mean at each feasible trial
            float(post.mean[round(self.to_unit(float(t.sparsity)) * m)])  # type: ignore[arg-type]
            for t in ok
            if t.feasible
        ]
        incumbent = max(feasible) if feasible else -math.inf
        if s.stop_early and float(score.max()) <= incumbent + s.objective_tolerance * spread:
            return None
        return float(self.grid[int(score.argmax()), 0])

    def _view(self, data: GPData, acc_gp: Any, obj_gp: Any, level: LevelSet) -> SurrogateView:
        acc, obj = posterior(acc_gp, self.grid), posterior(obj_gp, self.grid)
        p = probability_feasible(acc.mean, acc.std)
        if self.settings.decreasing and level.p_feasible > 0:
            p = torch.where(self.grid[:, 0] <= level.high, p, torch.zeros_like(p))
        grid = [self.to_sparsity(float(u)) for u in self.grid[:, 0]]
        return SurrogateView.of(grid, acc, obj, p, self.constraint)
