"""Several points per round: batch proposals over believed outcomes (Kriging believer).

A proposer asked for ``q`` points may return them all (its own batch acquisition).
When it returns fewer, the rest are drawn one at a time: each point already chosen
this round is added to the trials as a *believed* trial (its outcome as the
proposer's surrogate predicts it, through an optional ``believe(trials, point)``
method; otherwise the outcome of the nearest evaluated trial, a "constant liar"), and
the proposer is asked again. The surrogates then treat the round's points as known,
so the next point goes elsewhere. Believed trials exist only inside this call: they
are never journaled or shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from condensa.search.constraint import Constraint
from condensa.search.proposer import Proposal, Proposer, SearchProblem, unit_distance
from condensa.search.trial import Point, Trial

BELIEVED = "believed"
"""The stage of a believed (not evaluated) trial."""


def _nearest_liar(problem: SearchProblem, trials: Sequence[Trial], point: Point) -> Trial:
    """A trial at ``point`` with the outcome of the nearest evaluated trial."""
    ok = [t for t in trials if not t.failed]
    if not ok:  # nothing measured yet: on the constraint, no objective information
        accuracy, objective, extra = problem.constraint.threshold, 0.0, {}
    else:
        near = min(ok, key=lambda t: unit_distance(problem, point, t.sparsity))
        assert near.accuracy is not None and near.objective is not None
        accuracy, objective, extra = near.accuracy, near.objective, dict(near.extra)
    return _believed(len(trials), point, accuracy, objective, problem.constraint, problem.seed,
                     extra)  # fmt: skip


def _believed(
    index: int,
    point: Point,
    accuracy: float,
    objective: float,
    constraint: Constraint,
    seed: int,
    extra: dict[str, float],
) -> Trial:
    return Trial(index, point, accuracy, objective, constraint.feasible(accuracy), BELIEVED,
                 0.0, 0.0, extra, None, seed)  # fmt: skip


def believed(
    proposer: Proposer, problem: SearchProblem, trials: Sequence[Trial], point: Point
) -> Trial:
    """The trial ``proposer`` expects at ``point`` (see the module docstring)."""
    believe = getattr(proposer, "believe", None)
    if callable(believe):
        trial = believe(list(trials), point)
        if isinstance(trial, Trial):
            return trial
    return _nearest_liar(problem, trials, point)


def propose_batch(
    proposer: Proposer,
    problem: SearchProblem,
    trials: Sequence[Trial],
    *,
    budget_left: int,
    q: int,
) -> list[Proposal]:
    """Up to ``q`` points for one round (fewer when the proposer stops or repeats itself)."""
    proposals = list(proposer.propose(trials, budget_left=budget_left, q=q))[:q]
    if not proposals or len(proposals) >= q:
        return proposals
    seen = list(trials)
    for proposal in proposals:
        seen.append(believed(proposer, problem, seen, proposal.point))
    while len(proposals) < min(q, budget_left):
        more = proposer.propose(seen, budget_left=budget_left - len(proposals), q=1)
        if not more:
            break
        point = more[0].point
        if more[0].replicate or any(
            unit_distance(problem, point, p.point) < 1e-6 for p in proposals
        ):
            break  # the proposer has nothing new to add this round
        proposals.append(more[0])
        seen.append(believed(proposer, problem, seen, point))
    return proposals


def believed_trial(
    index: int,
    point: Point,
    margin: float,
    objective: float,
    constraint: Constraint,
    seed: int,
    extra: dict[str, float],
) -> Trial:
    """A believed trial from a predicted constraint margin and objective."""
    accuracy = constraint.threshold + (-margin if constraint.lower_is_better else margin)
    if not math.isfinite(accuracy):
        accuracy = constraint.threshold
    return _believed(index, point, accuracy, objective, constraint, seed, extra)


def shared_noise(trials: Sequence[Trial]) -> dict[str, float]:
    """Mean standard errors of ``trials`` (for a believed trial among them), where all have one."""
    out: dict[str, float] = {}
    for key in ("accuracy_se", "objective_se"):
        values = [t.extra.get(key) for t in trials]
        if values and all(isinstance(v, (int, float)) for v in values):
            out[key] = sum(values) / len(values)  # type: ignore[arg-type]
    return out
