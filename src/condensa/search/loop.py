"""``search_sparsity``: the constrained search loop, its journal, and its result."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from condensa.errors import ConfigError
from condensa.search.constraint import Constraint
from condensa.search.journal import Journal
from condensa.search.result import SearchResult
from condensa.search.trial import Point, Trial, parse_outcome
from condensa.search.two_stage import TwoStage, TwoStageSettings

Evaluate = Callable[[Any], Any]
STOPPING: tuple[type[BaseException], ...] = (OSError, MemoryError, ConfigError)
"""Errors of ``evaluate`` that stop the search instead of failing one trial."""


class Proposer(Protocol):
    """Chooses the next point from the trials so far; None stops the search."""

    def propose(self, trials: list[Trial]) -> tuple[Point, str] | None: ...  # noqa: D102

    def set_budget_left(self, remaining: int) -> None: ...  # noqa: D102


def _check_bounds(bounds: object) -> list[tuple[float, float]]:
    """``[(low, high), ...]`` from ``(low, high)`` or a sequence of pairs; each in [0, 1)."""
    if (
        isinstance(bounds, Sequence)
        and len(bounds) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    ):
        pairs = [tuple(bounds)]
    elif (
        isinstance(bounds, Sequence)
        and bounds
        and all(isinstance(p, Sequence) and len(p) == 2 for p in bounds)
    ):
        pairs = [tuple(p) for p in bounds]
    else:
        raise ConfigError(
            f"bounds must be (low, high) or a list of (low, high) pairs, got {bounds!r}"
        )
    out = []
    for low, high in pairs:
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
            raise ConfigError(f"bounds must be finite numbers, got {(low, high)!r}")
        if not 0.0 <= low < high < 1.0:
            raise ConfigError(
                f"bounds {(low, high)!r} must satisfy 0 <= low < high < 1 (sparsity is in [0, 1))"
            )
        out.append((float(low), float(high)))
    if len(out) > 8:
        raise ConfigError(f"at most 8 sparsity dimensions are supported, got {len(out)}")
    return out


def search_sparsity(
    evaluate: Evaluate,
    *,
    accuracy_threshold: float | None = None,
    max_drop: float | None = None,
    max_relative_drop: float | None = None,
    reference_accuracy: float | None = None,
    lower_is_better: bool = False,
    budget: int = 10,
    bounds: Sequence[float] | Sequence[Sequence[float]] = (0.0, 0.99),
    seed: int | None = None,
    journal: str | Path | None = None,
    settings: TwoStageSettings | None = None,
    callback: Callable[[Trial], None] | None = None,
) -> SearchResult:
    """Find the sparsity that maximizes an objective under an accuracy constraint.

    ``evaluate(sparsity)`` compresses at ``sparsity`` and returns ``(accuracy,
    objective)`` (or a mapping with those keys, extras allowed); the objective is
    maximized. It is called at most ``budget`` times. A call that raises or returns
    NaN/None/a wrong shape is recorded as a failed trial, counts against the budget,
    and the search goes on, except for errors that are not a property of the point:
    the environment (``OSError`` such as a full disk, ``MemoryError``, interrupts) and
    configuration (:class:`~condensa.errors.ConfigError`) stop the search with that
    error, and the trial is not journaled, so a resumed search runs it again.

    Args:
        evaluate: the black box.
        accuracy_threshold: minimum accuracy (maximum when ``lower_is_better``); or
        max_drop: at most this much worse than ``reference_accuracy``, in absolute
            units of the accuracy (0.01 = one point for a fraction); or
        max_relative_drop: at most this fraction of ``reference_accuracy`` worse.
        reference_accuracy: the uncompressed model's accuracy, for the drop forms.
        lower_is_better: for perplexity-like metrics.
        budget: maximum number of ``evaluate`` calls (>= 1).
        bounds: ``(low, high)`` for one sparsity, or a list of pairs for a vector of
            sparsities (``evaluate`` then receives a tuple; constrained qLogNEI).
        seed: makes the search reproducible; drawn at random (and reported) when None.
        journal: JSON-lines file; every trial is written and flushed before the next
            evaluation, and a search restarted with the same journal reuses its trials.
        settings: the 1-D search's settings.
        callback: called with each new trial.

    Returns:
        A :class:`SearchResult`; ``result.best`` is the best *evaluated* feasible trial.

    Raises:
        ConfigError: bad budget, bounds or constraint, or a journal of another problem;
            or raised by ``evaluate`` (re-raised as it was).
        OSError, MemoryError: raised by ``evaluate`` (re-raised as they were).

    Example:
        >>> result = search_sparsity(lambda s: (0.9 - 0.5 * s**4, s), accuracy_threshold=0.85)
        >>> round(result.best.sparsity, 2)  # doctest: +SKIP
        0.56

    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"budget must be a positive integer, got {budget!r}")
    if not callable(evaluate):
        raise ConfigError(f"evaluate must be callable, got {evaluate!r}")
    pairs = _check_bounds(bounds)
    constraint = Constraint.make(
        accuracy_threshold=accuracy_threshold,
        max_drop=max_drop,
        max_relative_drop=max_relative_drop,
        reference_accuracy=reference_accuracy,
        lower_is_better=lower_is_better,
    )
    problem = {"bounds": [list(p) for p in pairs], **constraint.to_dict()}
    log = None if journal is None else Journal(journal, problem)
    trials: list[Trial] = list(log.trials) if log is not None else []
    if seed is None:
        recorded = [t.seed for t in trials if t.seed is not None]
        seed = recorded[0] if recorded else random.randrange(2**31)
    proposer: Proposer
    if len(pairs) == 1:
        proposer = TwoStage(pairs[0], constraint, settings or TwoStageSettings(), seed)
    else:
        from condensa.search.multi import ConstrainedBO

        proposer = ConstrainedBO(pairs, constraint, seed)
    reason = "budget used"
    stopped_early = False
    while len(trials) < budget:
        proposer.set_budget_left(budget - len(trials))
        start = time.perf_counter()
        proposal = proposer.propose(trials)
        overhead = time.perf_counter() - start
        if proposal is None:
            stopped_early, reason = True, "stopped early: the answer is certain"
            break
        point, stage = proposal
        trial = _run_trial(evaluate, point, len(trials), stage, overhead, constraint, seed)
        trials.append(trial)
        if log is not None:
            log.append(trial)
        if callback is not None:
            callback(trial)
    return _result(trials, constraint, proposer, stopped_early, reason, seed, pairs)


def _run_trial(
    evaluate: Evaluate,
    point: Point,
    index: int,
    stage: str,
    overhead: float,
    constraint: Constraint,
    seed: int,
) -> Trial:
    start = time.perf_counter()
    try:
        accuracy, objective, extra = parse_outcome(evaluate(point))
    except STOPPING:
        raise  # not a property of the point: stop, and retry it when the search resumes
    except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, the search goes on
        return Trial(
            index,
            point,
            None,
            None,
            False,
            stage,
            time.perf_counter() - start,
            overhead,
            {},
            f"{type(exc).__name__}: {exc}",
            seed,
        )
    return Trial(
        index,
        point,
        accuracy,
        objective,
        constraint.feasible(accuracy),
        stage,
        time.perf_counter() - start,
        overhead,
        extra,
        None,
        seed,
    )


def _result(
    trials: list[Trial],
    constraint: Constraint,
    proposer: Proposer,
    stopped_early: bool,
    reason: str,
    seed: int,
    pairs: list[tuple[float, float]],
) -> SearchResult:
    ok = [t for t in trials if not t.failed]
    feasible = [t for t in ok if t.feasible]
    view = level = probability = None
    if isinstance(proposer, TwoStage):
        view, level, probability = proposer.view(trials)
    if feasible and probability is not None and isinstance(proposer, TwoStage):
        two_stage = proposer

        # prefer trials the accuracy GP also deems feasible (guards against lucky noise)
        def credible(t: Trial) -> bool:
            u = two_stage.to_unit(float(t.sparsity))  # type: ignore[arg-type]
            index = round(u * (len(probability) - 1))
            return float(probability[index]) >= 0.5

        feasible = [t for t in feasible if credible(t)] or feasible
    best = max(feasible, key=lambda t: (t.objective, -t.index)) if feasible else None
    closest = None
    if best is None and ok:
        closest = max(ok, key=lambda t: constraint.margin(t.accuracy))  # type: ignore[arg-type]
    s_acc = s_acc_std = None
    if level is not None and level.p_feasible > 0 and isinstance(proposer, TwoStage):
        low, high = pairs[0]
        s_acc = proposer.to_sparsity(level.mean)
        s_acc_std = level.std * (high - low)
    bounds: Any = pairs[0] if len(pairs) == 1 else pairs
    return SearchResult(
        best,
        trials,
        constraint,
        s_acc,
        s_acc_std,
        closest,
        stopped_early,
        reason,
        view,
        seed,
        bounds,
    )
