"""``search_sparsity``: the constrained search loop, its journal, and its result."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from condensa.distributed import from_main
from condensa.errors import ConfigError, EnvironmentFailure, check_int, environmental
from condensa.search.batch import propose_batch
from condensa.search.constraint import Constraint
from condensa.search.journal import Journal
from condensa.search.pool import Outcome, SerialPool, TrialPool
from condensa.search.proposer import (
    Proposal,
    Proposer,
    SearchProblem,
    StrategyFactory,
    make_strategy,
    private_rng,
    unit_distance,
)
from condensa.search.result import SearchResult
from condensa.search.settings import TwoStageSettings
from condensa.search.trial import Point, Trial, known_trials, parse_outcome

Evaluate = Callable[[Any], Any]
STOPPING: tuple[type[BaseException], ...] = (
    OSError,
    MemoryError,
    ConfigError,
    torch.distributed.DistError,  # a rank failed: stop, resume the run once it is back
)
"""Errors of ``evaluate`` that stop the search instead of failing one trial."""
DUPLICATE_TOLERANCE = 1e-3
"""Points closer than this fraction of the bounds are the same point (no second run)."""


def check_bounds(bounds: object) -> list[tuple[float, float]]:
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
    constraint: Constraint | None = None,
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
    strategy: str | StrategyFactory | Proposer | None = None,
    deterministic: bool = False,
    monotone: bool = False,
    pool: TrialPool | None = None,
    known: Sequence[Mapping[str, Any]] = (),
) -> SearchResult:
    """Find the sparsity that maximizes an objective under an accuracy constraint.

    ``evaluate(sparsity)`` compresses at ``sparsity`` and returns ``(accuracy,
    objective)`` (or a mapping with those keys, extras allowed; ``accuracy_se`` and
    ``objective_se`` extras are standard errors the surrogates use as known noise);
    the objective is maximized. It is called at most ``budget`` times, never twice at
    one point except for an explicit replicate of a noisy answer. A call that raises or
    returns NaN/None/a wrong shape is recorded as a failed trial, counts against the
    budget, and the search goes on, except for errors that are not a property of the
    point: the environment (``OSError`` such as a full disk, ``MemoryError``,
    interrupts) and configuration (:class:`~condensa.errors.ConfigError`) stop the
    search with that error, and the trial is not journaled, so a resumed search runs
    it again. The global torch, numpy and ``random`` generator states are left as
    ``evaluate`` leaves them: the strategies draw from private, seeded generators.

    Args:
        evaluate: the black box.
        constraint: the constraint, built (:meth:`Constraint.make`); or
        accuracy_threshold: minimum accuracy (maximum when ``lower_is_better``); or
        max_drop: at most this much worse than ``reference_accuracy``, in absolute
            units of the accuracy (0.01 = one point for a fraction); or
        max_relative_drop: at most this fraction of ``reference_accuracy`` worse.
        reference_accuracy: the uncompressed model's accuracy, for the drop forms.
        lower_is_better: for perplexity-like metrics.
        budget: maximum number of ``evaluate`` calls (>= 1).
        bounds: ``(low, high)`` for one sparsity, or a list of pairs for a vector of
            sparsities (``evaluate`` then receives a tuple).
        seed: makes the search reproducible; drawn at random (and reported) when None.
        journal: JSON-lines file; every trial is written and flushed before the next
            evaluation, and a search restarted with the same journal reuses its trials.
        settings: the strategy's settings (:class:`TwoStageSettings` for the default).
        callback: called with each new trial.
        strategy: a registered name (``"two-stage"``, the default for one sparsity;
            ``"bo"``, the default for several; ``"bisection"``, ``"random"``, ``"grid"``,
            ``"tpe"``, or one registered with :func:`register_strategy`), a factory
            taking a :class:`SearchProblem`, or a ready proposer.
        deterministic: ``evaluate`` returns the same accuracy for the same point
            (direct compression): noise-free accuracy surrogate, no replicates.
        monotone: the objective never decreases with sparsity (memory, MACs).
        pool: where trials run (:class:`~condensa.search.pool.SerialPool`, the default,
            or a :class:`~condensa.search.ray_pool.RayPool`); with ``pool.workers`` = q
            > 1 each round proposes q points (Kriging believer, see
            :mod:`condensa.search.batch`), they run side by side and are journaled in
            the order they complete, each with its ``extra["round"]``.
        known: observations made before the search, each a mapping of ``sparsity``
            (inside the bounds) and what ``evaluate`` would return there, e.g. the
            uncompressed model's ``{"sparsity": 0.0, "accuracy": 0.93, "objective":
            1.0}`` (:func:`condensa.search_compression` gives it when the scheme
            leaves the model as it is at the lower bound). They cost no evaluation and
            are never answers: the two-stage and ``"bo"`` strategies fit their
            surrogates to them (a noisy objective is then anchored where the model is
            not compressed); the baselines ignore them.

    Returns:
        A :class:`SearchResult`; ``result.best`` is an *evaluated* feasible trial.

    Raises:
        ConfigError: bad budget, bounds, strategy or constraint, a journal of another
            problem, or a proposal outside the bounds; or raised by ``evaluate``.
        OSError, MemoryError: raised by ``evaluate`` (re-raised); EnvironmentFailure: its
            allocator, lost-process or dead-worker error (:func:`~condensa.errors.environmental`).

    Example:
        >>> result = search_sparsity(lambda s: (0.9 - 0.5 * s**4, s), accuracy_threshold=0.85)
        >>> round(result.best.sparsity, 2)  # doctest: +SKIP
        0.56

    """
    check_int("budget", budget)
    if not callable(evaluate):
        raise ConfigError(f"evaluate must be callable, got {evaluate!r}")
    pairs = check_bounds(bounds)
    forms = {"accuracy_threshold": accuracy_threshold, "max_drop": max_drop,
             "max_relative_drop": max_relative_drop}  # fmt: skip
    if constraint is None:
        constraint = Constraint.make(
            **forms, reference_accuracy=reference_accuracy, lower_is_better=lower_is_better
        )
    elif not isinstance(constraint, Constraint) or any(v is not None for v in forms.values()):
        raise ConfigError(
            f"give constraint= (a Constraint) or one of {', '.join(forms)}, not both; got "
            f"constraint={constraint!r} and {[k for k, v in forms.items() if v is not None]}"
        )
    log = (
        None
        if journal is None
        else Journal(journal, {"bounds": [list(p) for p in pairs], **constraint.to_dict()})
    )
    trials: list[Trial] = list(log.trials) if log is not None else []
    if seed is None:
        recorded = [t.seed for t in trials if t.seed is not None]
        seed = recorded[0] if recorded else random.SystemRandom().randrange(2**31)
    problem = SearchProblem(
        tuple(pairs), constraint, seed, deterministic, monotone, settings,
        known_trials(known, pairs, constraint, seed),
    )  # fmt: skip
    default = "two-stage" if len(pairs) == 1 else "bo"
    with private_rng():
        proposer = make_strategy(default if strategy is None else strategy, problem)
    pool = SerialPool() if pool is None else pool
    check_int("workers", pool.workers)
    reason, stopped_early = "budget used", False
    rounds = max((int(t.extra.get("round", 0)) for t in trials), default=0)  # resumed rounds
    while len(trials) < budget and not stopped_early:
        start = time.perf_counter()
        with private_rng():
            # every rank of a data-parallel run follows rank 0's proposals
            proposals = from_main(
                propose_batch(
                    proposer, problem, trials, budget_left=budget - len(trials), q=pool.workers
                )
            )
        overhead = time.perf_counter() - start
        if not proposals:
            stopped_early, reason = True, "stopped early: the answer is certain"
        batch: list[Proposal] = []
        for proposal in proposals[: budget - len(trials)]:
            repeat = _repeat_of(problem, proposal, trials)
            if repeat is not None and (not proposal.replicate or deterministic):
                stopped_early = True
                reason = (
                    f"stopped early: the strategy proposed sparsity {_show(proposal.point)} "
                    f"again (trial {repeat.index + 1})"
                    + (" and the evaluator is deterministic" if proposal.replicate else "")
                )
                break
            batch.append(proposal)
        rounds += 1
        for position, outcome in pool.run(evaluate, [p.point for p in batch]):
            proposal = batch[position]
            trial = _trial(outcome, proposal, len(trials), overhead, constraint, seed)
            if pool.workers > 1:
                trial.extra["round"] = rounds
            trials.append(trial)
            if log is not None:
                log.append(trial)
            if callback is not None:
                callback(trial)
    return _result(trials, problem, proposer, stopped_early, reason, pairs)


def _show(point: Point) -> str:
    return f"{point:.4f}" if isinstance(point, float) else str(point)


def _repeat_of(problem: SearchProblem, proposal: Proposal, trials: list[Trial]) -> Trial | None:
    """The evaluated trial at the proposed point, if any.

    Raises:
        ConfigError: the point lies outside the bounds or has the wrong dimension.

    """
    values = proposal.point if isinstance(proposal.point, tuple) else (proposal.point,)
    if len(values) != problem.dimensions or not all(
        isinstance(v, (int, float)) and low - 1e-9 <= v <= high + 1e-9
        for v, (low, high) in zip(values, problem.bounds, strict=False)
    ):
        raise ConfigError(
            f"the search strategy proposed {proposal.point!r}, outside the bounds "
            f"{list(problem.bounds)}"
        )
    for t in trials:
        if (
            not t.failed
            and unit_distance(problem, proposal.point, t.sparsity) < DUPLICATE_TOLERANCE
        ):
            return t
    return None


def _trial(
    outcome: Outcome,
    proposal: Proposal,
    index: int,
    overhead: float,
    constraint: Constraint,
    seed: int,
) -> Trial:
    """The trial record of one outcome; errors that are not the point's are raised."""
    point, stage = proposal.point, proposal.stage
    if outcome.error is None:
        try:
            accuracy, objective, extra = parse_outcome(outcome.value)
        except Exception as exc:  # noqa: BLE001 - a malformed outcome is a failed trial
            outcome = Outcome(None, exc, outcome.wall_s)
    if outcome.error is not None:
        if isinstance(outcome.error, STOPPING):
            # not a property of the point: stop, and retry it when the search resumes
            raise outcome.error
        why = environmental(outcome.error)
        if why is not None:  # a lost rank, an allocator: the point was never measured
            first = (str(outcome.error).strip().splitlines() or [""])[0][:300]
            raise EnvironmentFailure(
                f"{why} during the trial at {_show(point)} ({type(outcome.error).__name__}: "
                f"{first}); it was not recorded: run the same command again to resume"
            ) from outcome.error
        error = f"{type(outcome.error).__name__}: {outcome.error}"
        return Trial(index, point, None, None, False, stage, outcome.wall_s, overhead, {},
                     error, seed)  # fmt: skip
    return Trial(index, point, accuracy, objective, constraint.feasible(accuracy), stage,
                 outcome.wall_s, overhead, extra, None, seed)  # fmt: skip


def _result(
    trials: list[Trial],
    problem: SearchProblem,
    proposer: Proposer,
    stopped_early: bool,
    reason: str,
    pairs: list[tuple[float, float]],
) -> SearchResult:
    constraint, seed = problem.constraint, problem.seed
    ok = [t for t in trials if not t.failed]
    feasible = [t for t in ok if t.feasible]
    answer = None
    choose = getattr(proposer, "answer", None)
    if callable(choose) and ok:
        with private_rng():
            answer = from_main(choose(trials))
    best = max(feasible, key=lambda t: (t.objective, -t.index)) if feasible else None
    if answer is not None and answer.best is not None and 0 <= answer.best < len(trials):
        chosen = trials[answer.best]
        best = chosen if chosen.feasible and not chosen.failed else best
    extra = _answer_note(feasible, best, answer)
    if problem.known:
        extra["known"] = [t.to_dict() for t in problem.known]
    if answer is not None and isinstance(answer.extra.get("candidates"), list):
        extra["candidates"] = list(answer.extra["candidates"])
    if answer is not None and best is not None and isinstance(answer.extra.get("caution"), str):
        extra["caution"] = answer.extra["caution"]
    closest = None
    if best is None and ok:
        closest = max(ok, key=lambda t: constraint.margin(t.accuracy))  # type: ignore[arg-type]
    failed = [t for t in trials if t.failed]
    if best is None and failed:
        reason = (
            f"{reason}; {len(failed)} of {len(trials)} trials failed (first: {failed[0].error})"
        )
    bounds: Any = pairs[0] if len(pairs) == 1 else pairs
    return SearchResult(
        best,
        trials,
        constraint,
        None if answer is None else answer.s_acc,
        None if answer is None else answer.s_acc_std,
        closest,
        stopped_early,
        reason,
        None if answer is None else answer.surrogate,
        seed,
        bounds,
        extra,
    )


def _answer_note(feasible: list[Trial], best: Trial | None, answer: Any) -> dict[str, Any]:
    """``{"answer_note": ...}`` when the answer is not the best measured feasible trial."""
    if best is None or not feasible:
        return {}
    top = max(feasible, key=lambda t: (t.objective, -t.index))
    if top.sparsity == best.sparsity:  # the answer's point (a replicate may read higher)
        return {}
    why = (answer.extra.get("passed_over") if answer is not None else None) or (
        "the strategy's answer rule preferred another trial"
    )
    return {
        "answer_note": f"trial {top.index + 1} (sparsity {_show(top.sparsity)}) measured "
        f"feasible with a better objective but was not chosen: {why}"
    }
