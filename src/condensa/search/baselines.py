"""Baseline strategies as proposers: bisection, random, grid and TPE (optuna).

They answer with the best observed feasible trial. Measured against the two-stage
search in ``benchmarks/search_efficiency.py``; useful as references and when a GP
is not wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from condensa.errors import ConfigError
from condensa.search.proposer import Proposal, SearchProblem, register_strategy
from condensa.search.trial import Point, Trial


def _one_dimension(problem: SearchProblem, name: str) -> tuple[float, float]:
    if problem.dimensions != 1:
        raise ConfigError(
            f"strategy {name!r} searches one sparsity; this problem has {problem.dimensions} "
            "(use 'bo' or 'random')"
        )
    return problem.bounds[0]


def _point(values: np.ndarray) -> Point:
    return float(values[0]) if len(values) == 1 else tuple(float(v) for v in values)


@register_strategy("bisection")
class Bisection:
    """Halve the interval: feasible midpoints move the low end up, infeasible the high end down."""

    def __init__(self, problem: SearchProblem) -> None:
        self.low, self.high = _one_dimension(problem, "bisection")

    def propose(self, trials: Sequence[Trial], *, budget_left: int, q: int = 1) -> list[Proposal]:
        """The midpoint of the interval the trials so far leave open."""
        low, high = self.low, self.high
        for t in trials:
            if t.failed:
                high = min(high, float(t.sparsity))  # type: ignore[arg-type]
            elif t.feasible:
                low = max(low, float(t.sparsity))  # type: ignore[arg-type]
            else:
                high = min(high, float(t.sparsity))  # type: ignore[arg-type]
        return [Proposal(0.5 * (low + high), "bisection")]


@register_strategy("random")
class RandomSearch:
    """Uniform random points (seeded): the n-th trial is the n-th draw."""

    def __init__(self, problem: SearchProblem) -> None:
        self.problem = problem

    def propose(self, trials: Sequence[Trial], *, budget_left: int, q: int = 1) -> list[Proposal]:
        """The next ``q`` draws."""
        low = np.array([b[0] for b in self.problem.bounds])
        high = np.array([b[1] for b in self.problem.bounds])
        rng = np.random.default_rng(self.problem.seed)
        draws = rng.uniform(low, high, size=(len(trials) + q, len(low)))
        return [Proposal(_point(d), "random") for d in draws[len(trials) :]]


@register_strategy("grid")
class GridSearch:
    """Evenly spaced points over the bounds, one per evaluation of the whole budget."""

    def __init__(self, problem: SearchProblem) -> None:
        self.low, self.high = _one_dimension(problem, "grid")

    def propose(self, trials: Sequence[Trial], *, budget_left: int, q: int = 1) -> list[Proposal]:
        """The next ``q`` grid points."""
        n = len(trials)
        points = np.linspace(self.low, self.high, n + budget_left)
        return [Proposal(float(p), "grid") for p in points[n : n + q]]


@register_strategy("tpe")
class TPE:
    """Optuna's constrained TPE sampler, replayed on the trials so far (the ``bench`` extra).

    Raises:
        ConfigError: optuna is not installed.

    """

    def __init__(self, problem: SearchProblem) -> None:
        try:
            import optuna
        except ImportError:
            raise ConfigError("strategy 'tpe' needs optuna: pip install optuna") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.problem = problem

    def propose(self, trials: Sequence[Trial], *, budget_left: int, q: int = 1) -> list[Proposal]:
        """Rebuild the study from the trials, then ask it for ``q`` points."""
        import optuna

        names = [f"s{i}" for i in range(self.problem.dimensions)]
        space: dict[str, Any] = {
            n: optuna.distributions.FloatDistribution(low, high)
            for n, (low, high) in zip(names, self.problem.bounds, strict=True)
        }
        sampler = optuna.samplers.TPESampler(
            seed=self.problem.seed + len(trials),
            n_startup_trials=3,
            constraints_func=lambda t: (t.user_attrs["violation"],),
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for t in trials:
            values = t.sparsity if isinstance(t.sparsity, tuple) else (t.sparsity,)
            failed = t.failed or t.objective is None or t.accuracy is None
            study.add_trial(
                optuna.trial.create_trial(
                    params=dict(zip(names, map(float, values), strict=True)),
                    distributions=space,
                    value=None if failed else float(t.objective),  # type: ignore[arg-type]
                    state=optuna.trial.TrialState.FAIL
                    if failed
                    else optuna.trial.TrialState.COMPLETE,
                    user_attrs={
                        "violation": 1.0
                        if failed
                        else -self.problem.constraint.margin(float(t.accuracy))  # type: ignore[arg-type]
                    },
                )
            )
        out = []
        for _ in range(q):
            asked = study.ask(space)
            out.append(Proposal(_point(np.array([asked.params[n] for n in names])), "tpe"))
        return out
