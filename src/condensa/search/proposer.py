"""The ask/tell seam of the search: a proposer chooses points, the loop evaluates them.

A search strategy is one class with one method, ``propose(trials, budget_left=, q=)``,
returning up to ``q`` :class:`Proposal` objects (several for parallel trials; an empty
list stops the search), registered under a name with :func:`register_strategy`. The
loop (:func:`condensa.search.search_sparsity`), the CLI's ``search.strategy`` key and
the docs read the registry, so a strategy written outside the package runs everywhere
once registered. A proposer may also implement ``answer(trials) -> Answer`` to choose
the returned trial from its surrogate (the default answer is the best observed
feasible trial).

Example:
    >>> @register_strategy("middle")
    ... class Middle:
    ...     def __init__(self, problem): self.problem = problem
    ...     def propose(self, trials, *, budget_left, q=1):
    ...         low, high = self.problem.bounds[0]
    ...         return [] if trials else [Proposal((low + high) / 2, "middle")]

"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from condensa.errors import ConfigError
from condensa.search.constraint import Constraint
from condensa.search.trial import Point, Trial


@dataclass(frozen=True)
class Proposal:
    """One point to evaluate.

    Attributes:
        point: a sparsity (1-D) or a tuple of them.
        stage: a short label shown in progress lines and reports.
        replicate: True when the point was evaluated before and is measured again on
            purpose (the answer hinges on its noisy value); the loop refuses other
            repeats and every repeat of a deterministic evaluator.

    """

    point: Point
    stage: str
    replicate: bool = False


@dataclass(frozen=True)
class SearchProblem:
    """What a strategy is told about the problem.

    Attributes:
        bounds: one ``(low, high)`` sparsity range per dimension.
        constraint: the accuracy constraint.
        seed: the search seed (a strategy draws all its randomness from it).
        deterministic: the evaluator returns the same values for the same point
            (e.g. direct compression): no replicates, noise-free surrogates.
        monotone: the objective never decreases with sparsity (memory, MACs): points
            below a credibly feasible trial are dominated and never proposed.
        settings: strategy-specific settings (e.g. :class:`TwoStageSettings`).
        known: observations made before the search (trials with negative indices, see
            :attr:`Trial.known`), e.g. the uncompressed model at sparsity 0: a strategy
            may fit its surrogates to them; they are never proposed again nor answered.

    """

    bounds: tuple[tuple[float, float], ...]
    constraint: Constraint
    seed: int
    deterministic: bool = False
    monotone: bool = False
    settings: Any = None
    known: tuple[Trial, ...] = ()

    @property
    def dimensions(self) -> int:
        """Number of sparsities in a point."""
        return len(self.bounds)


@dataclass(frozen=True)
class Answer:
    """A strategy's choice among the evaluated trials, and what it learned.

    Attributes:
        best: index of the chosen trial, or None when none is credibly feasible.
        s_acc, s_acc_std: the estimated largest feasible sparsity (1-D), or None.
        surrogate: posteriors for plots (:class:`~condensa.search.SurrogateView`), or None.
        extra: ``"candidates"``, the indices of the trials the answer was chosen from
            (credibly feasible ones); ``"passed_over"``, why the best measured trial is
            not the answer; ``"caution"``, why the answer's feasibility is in doubt
            (no trial is credibly feasible), for the user.

    """

    best: int | None
    s_acc: float | None = None
    s_acc_std: float | None = None
    surrogate: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Proposer(Protocol):
    """Chooses the next points from the trials so far."""

    def propose(  # noqa: D102
        self, trials: Sequence[Trial], *, budget_left: int, q: int = 1
    ) -> list[Proposal]: ...


StrategyFactory = Callable[[SearchProblem], Proposer]
STRATEGIES: dict[str, StrategyFactory] = {}
"""Search strategies by name (see :func:`register_strategy`)."""


def register_strategy(name: str) -> Callable[[StrategyFactory], StrategyFactory]:
    """Register a strategy factory (a class taking a :class:`SearchProblem`) under ``name``.

    Raises:
        ConfigError: the name is empty or taken.

    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a strategy name must be a non-empty string, got {name!r}")

    def decorate(factory: StrategyFactory) -> StrategyFactory:
        if name in STRATEGIES and STRATEGIES[name] is not factory:
            raise ConfigError(f"search strategy {name!r} is already registered")
        STRATEGIES[name] = factory
        return factory

    return decorate


def strategy_names() -> tuple[str, ...]:
    """The registered strategies' names, the built-in ones included."""
    from condensa.search import baselines, multi, two_stage  # noqa: F401 - registrations

    return tuple(STRATEGIES)


def make_strategy(strategy: str | StrategyFactory | Proposer, problem: SearchProblem) -> Proposer:
    """A proposer from a registered name, a factory, or a ready proposer.

    Raises:
        ConfigError: an unknown name (the registered ones listed) or an object that
            does not propose.

    """
    if isinstance(strategy, str):
        if strategy not in strategy_names():
            raise ConfigError(
                f"unknown search strategy {strategy!r}; valid: {', '.join(sorted(STRATEGIES))}"
            )
        strategy = STRATEGIES[strategy]
    ready = isinstance(strategy, Proposer) and not isinstance(strategy, type)
    proposer = strategy if ready else strategy(problem)  # type: ignore[operator]
    if not isinstance(proposer, Proposer):
        raise ConfigError(f"search strategy {strategy!r} has no propose(trials, budget_left=, q=)")
    return proposer


@contextmanager
def private_rng() -> Iterator[None]:
    """Leave the global torch, numpy and ``random`` generator states as they were.

    Strategies seed torch for reproducible GP fits; inside this block that seeding
    never leaks to the caller (BoTorch's ``manual_seed`` context does the same).
    """
    state = random.getstate()
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(state)
            np.random.set_state(numpy_state)


def unit_distance(problem: SearchProblem, a: Point, b: Point) -> float:
    """Largest per-dimension distance between two points, in units of each bound's span."""
    xs = a if isinstance(a, tuple) else (a,)
    ys = b if isinstance(b, tuple) else (b,)
    return max(
        abs(float(x) - float(y)) / (high - low)
        for x, y, (low, high) in zip(xs, ys, problem.bounds, strict=True)
    )
