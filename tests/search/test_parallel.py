"""Several trials per round: batch proposals, completion-order journaling, the Ray pool."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from condensa import ConfigError
from condensa.search import Proposal, SearchProblem, TwoStageSettings, search_sparsity
from condensa.search.batch import BELIEVED, propose_batch
from condensa.search.constraint import Constraint
from condensa.search.pool import Outcome, SerialPool, call
from tests.search.conftest import logistic_accuracy, s_star

FAST = TwoStageSettings(grid=201, samples=64)


class ReversedPool:
    """Runs a round's points in order but reports them last first (completion order)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.rounds: list[list[Any]] = []

    def run(self, evaluate: Callable[[Any], Any], points: Sequence[Any]) -> Iterator[Any]:
        self.rounds.append(list(points))
        outcomes = [(i, call(evaluate, p)) for i, p in enumerate(points)]
        yield from reversed(outcomes)


def _evaluate(s: float) -> tuple[float, float]:
    return logistic_accuracy(s), s


@pytest.mark.slow
@pytest.mark.parametrize(("q", "known"), [(2, []), (4, []), (2, [{"sparsity": 0.0,
                         "accuracy": 0.92, "objective": 0.0}])])  # fmt: skip
def test_q_points_per_round_reach_the_answer_in_fewer_rounds(q, known):
    """q distinct points per round, unique indices, a feasible answer near s*."""
    pool = ReversedPool(q)
    result = search_sparsity(
        _evaluate, accuracy_threshold=0.91, seed=0, settings=FAST, budget=12, pool=pool,
        known=known,
    )  # fmt: skip
    assert [t.index for t in result.trials] == list(range(len(result.trials)))
    assert all(1 <= len(r) <= q for r in pool.rounds)
    assert all(len(set(r)) == len(r) for r in pool.rounds)
    assert max(len(r) for r in pool.rounds) == q
    assert len(pool.rounds) < len(result.trials)
    assert [t.extra["round"] for t in result.trials] == sorted(
        t.extra["round"] for t in result.trials
    )
    assert result.best is not None and result.best.feasible
    assert abs(result.best.sparsity - s_star(0.91)) < 0.05


@pytest.mark.slow
def test_trials_are_journaled_in_completion_order(tmp_path):
    """The journal follows the order trials finish in, not the order they were proposed."""
    pool = ReversedPool(2)
    journal = tmp_path / "j.jsonl"
    result = search_sparsity(
        _evaluate, accuracy_threshold=0.91, seed=0, settings=FAST, budget=4, pool=pool,
        journal=journal,
    )  # fmt: skip
    first_round = pool.rounds[0]
    assert [t.sparsity for t in result.trials[:2]] == first_round[::-1]
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    indices = [x["trial"]["index"] for x in lines if x.get("type") == "trial"]
    assert indices == [0, 1, 2, 3]
    resumed = search_sparsity(
        _evaluate, accuracy_threshold=0.91, seed=0, settings=FAST, budget=4, journal=journal
    )
    assert [t.sparsity for t in resumed.trials] == [t.sparsity for t in result.trials]


def test_a_stopping_error_keeps_the_finished_trials_of_the_round(tmp_path):
    """An environment error mid-round stops the search; trials done before it stay journaled."""

    def evaluate(s: float) -> tuple[float, float]:
        if s > 0.5:
            raise OSError(28, "No space left on device")
        return _evaluate(s)

    journal = tmp_path / "j.jsonl"
    with pytest.raises(OSError, match="No space left"):
        search_sparsity(
            evaluate, accuracy_threshold=0.91, seed=0, settings=FAST, budget=6,
            pool=SerialPool(), journal=journal,
        )  # fmt: skip
    kept = [json.loads(x) for x in journal.read_text().splitlines()]
    trials = [x["trial"] for x in kept if x.get("type") == "trial"]
    assert trials and all(x["sparsity"] <= 0.5 for x in trials)


class OnePoint:
    """A proposer that returns one point per call, always the middle of the free range."""

    def __init__(self, problem: SearchProblem) -> None:
        self.problem = problem

    def propose(self, trials: Sequence[Any], *, budget_left: int, q: int = 1) -> list[Proposal]:
        taken = sorted(float(t.sparsity) for t in trials)
        edges = [0.0, *taken, 1.0]
        gaps = [(b - a, (a + b) / 2) for a, b in zip(edges, edges[1:], strict=False)]
        return [Proposal(max(gaps)[1], "mid")]


def test_a_one_point_proposer_is_asked_again_over_believed_trials():
    """propose_batch fills the round from a q=1 proposer; believed trials stay internal."""
    problem = SearchProblem(((0.0, 1.0),), Constraint(0.9), seed=0)
    proposals = propose_batch(OnePoint(problem), problem, [], budget_left=10, q=3)
    assert [p.point for p in proposals] == [0.5, 0.75, 0.25]
    assert all(p.stage == "mid" for p in proposals)
    assert BELIEVED not in {p.stage for p in proposals}


def test_batch_never_exceeds_the_budget_left():
    """A round is cut to the budget that remains."""
    problem = SearchProblem(((0.0, 1.0),), Constraint(0.9), seed=0)
    assert len(propose_batch(OnePoint(problem), problem, [], budget_left=2, q=4)) == 2


@pytest.mark.slow
def test_two_stage_believes_its_surrogate_means():
    """The default strategy's believed trial sits on its accuracy surrogate (Kriging believer)."""
    from condensa.search.two_stage import TwoStage

    problem = SearchProblem(((0.0, 0.99),), Constraint(0.91), seed=0, settings=FAST)
    proposer = TwoStage(problem)
    trials = search_sparsity(_evaluate, accuracy_threshold=0.91, seed=0, settings=FAST,
                             budget=5).trials  # fmt: skip
    belief = proposer.believe(trials, 0.6)
    assert belief is not None and belief.stage == BELIEVED
    assert belief.accuracy == pytest.approx(logistic_accuracy(0.6), abs=0.05)
    assert belief.feasible == (belief.accuracy >= 0.91)


def test_serial_pool_outcome_holds_errors_and_times():
    """call() catches an ordinary error into the outcome and times the call."""
    outcome = call(lambda s: 1 / 0, 0.5)
    assert isinstance(outcome.error, ZeroDivisionError) and outcome.value is None
    assert outcome.wall_s >= 0
    assert list(SerialPool().run(lambda s: s * 2, [1, 2])) == [
        (0, Outcome(2, None, pytest.approx(0.0, abs=1.0))),
        (1, Outcome(4, None, pytest.approx(0.0, abs=1.0))),
    ]


def test_ray_pool_without_ray_names_the_extra(monkeypatch):
    """Without Ray installed, a clear message names the extra to install."""
    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from condensa.search.ray_pool import RayPool

    with pytest.raises(ConfigError, match=r'pip install "condensa\[ray\]"'):
        RayPool(2)


def test_ray_pool_refuses_bad_resources():
    """Workers and resources are checked before Ray starts."""
    pytest.importorskip("ray")
    from condensa.search.ray_pool import RayPool

    with pytest.raises(ConfigError, match="workers"):
        RayPool(0)
    with pytest.raises(ConfigError, match="cpus_per_trial must be a number >= 0, got -1"):
        RayPool(2, cpus_per_trial=-1)


@pytest.mark.slow
def test_ray_pool_stops_on_a_dying_worker_and_the_rerun_finishes(tmp_path):
    """Two Ray workers: a worker process that dies is not a result (the search stops, the
    trial is not journaled); the rerun runs it again and finishes with no failed trial."""
    pytest.importorskip("ray")
    from condensa.errors import EnvironmentFailure
    from condensa.search.ray_pool import RayPool

    def curve(s: float) -> tuple[float, float]:
        import math

        return 92.0 - 60.0 / (1 + math.exp(-(s - 0.8) / 0.04)), s

    def dying(s: float) -> tuple[float, float]:
        import os

        if 0.43 < s < 0.45:  # the second initial point of seed 0: its worker dies
            os._exit(1)
        return curve(s)

    journal = tmp_path / "journal.jsonl"
    options = {"accuracy_threshold": 91.0, "seed": 0, "settings": FAST, "budget": 6,
               "journal": journal}  # fmt: skip
    with RayPool(2, cpus_per_trial=1) as pool, pytest.raises(EnvironmentFailure, match="died"):
        search_sparsity(dying, pool=pool, **options)
    with RayPool(2, cpus_per_trial=1) as pool:
        result = search_sparsity(curve, pool=pool, **options)
    assert not any(t.failed for t in result.trials)
    assert any(0.43 < t.sparsity < 0.45 for t in result.trials)
    assert len(result.trials) == 6 and [t.index for t in result.trials] == list(range(6))
    assert result.best is not None and result.best.feasible
