"""The ask/tell seam: strategies as proposers, no wasted trials, replicates, private RNG."""

import random

import numpy as np
import pytest
import torch

from condensa import ConfigError
from condensa.search import (
    STRATEGIES,
    Answer,
    Constraint,
    Proposal,
    SearchProblem,
    Trial,
    TwoStageSettings,
    register_strategy,
    search_sparsity,
)
from condensa.search.loop import DUPLICATE_TOLERANCE, _result
from tests.search.conftest import logistic_accuracy

FAST = TwoStageSettings(grid=201, samples=64)


class EdgeWalker:
    """A strategy written outside the package: walks up from the low bound in steps."""

    def __init__(self, problem):
        self.low, self.high = problem.bounds[0]

    def propose(self, trials, *, budget_left, q=1):
        step = (self.high - self.low) / 8
        return [Proposal(self.low + step * (len(trials) + 1), "walk")] if len(trials) < 7 else []


def test_a_strategy_registered_outside_runs_through_search_sparsity():
    """register_strategy + a name is all it takes; returning [] stops the search early."""
    register_strategy("edge-walker-test")(EdgeWalker)
    try:
        result = search_sparsity(
            lambda s: (logistic_accuracy(s), s),
            accuracy_threshold=0.91,
            budget=10,
            seed=0,
            strategy="edge-walker-test",
        )
    finally:
        del STRATEGIES["edge-walker-test"]
    assert [t.stage for t in result.trials] == ["walk"] * 7
    assert result.stopped_early and result.best is not None
    assert result.best.sparsity == max(t.sparsity for t in result.trials if t.feasible)


class CautiousWalker(EdgeWalker):
    """Answers with the least sparse feasible trial, and says why."""

    def answer(self, trials):
        feasible = [t for t in trials if t.feasible]
        return Answer(min(feasible, key=lambda t: t.sparsity).index, extra={"passed_over": "x"})


def test_the_answer_says_why_the_best_measured_trial_was_passed_over():
    """When the answer is not the feasible trial with the best measured objective, the result
    names that trial and the strategy's reason; when it is, there is no note."""
    register_strategy("cautious-walker-test")(CautiousWalker)
    try:
        result = search_sparsity(
            lambda s: (logistic_accuracy(s), s), accuracy_threshold=0.91, budget=10, seed=0,
            strategy="cautious-walker-test",
        )  # fmt: skip
    finally:
        del STRATEGIES["cautious-walker-test"]
    top = max((t for t in result.trials if t.feasible), key=lambda t: t.objective)
    assert result.best.index == 0 and top.index != 0
    assert result.extra["answer_note"] == (
        f"trial {top.index + 1} (sparsity {top.sparsity:.4f}) measured feasible with a better "
        "objective but was not chosen: x"
    )
    plain = search_sparsity(lambda s: (logistic_accuracy(s), s), accuracy_threshold=0.91,
                            budget=4, seed=0, strategy="grid")  # fmt: skip
    assert "answer_note" not in plain.extra


def test_a_replicate_of_the_answer_reading_higher_needs_no_note():
    """Trials at the answer's own point are the answer: no note about passing them over."""
    replicated = [Trial(0, 0.5, 0.95, 1.0, True), Trial(1, 0.5, 0.95, 1.2, True, "replicate")]
    problem = SearchProblem(((0.0, 1.0),), Constraint(0.9), seed=0)
    result = _result(replicated, problem, CautiousWalker(problem), False, "budget used", [(0, 1)])
    assert result.best is not None and result.best.sparsity == 0.5
    assert "answer_note" not in result.extra


def test_unknown_strategy_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown search strategy 'annealing'.*bisection"):
        search_sparsity(lambda s: (1.0, s), accuracy_threshold=0.5, strategy="annealing")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bisection", "random", "grid", "two-stage", "bo"])
def test_every_builtin_strategy_runs_and_answers_a_feasible_trial(name):
    result = search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=6,
        seed=1,
        strategy=name,
        settings=FAST if name == "two-stage" else None,
    )
    assert 1 <= len(result.trials) <= 6
    assert result.best is not None and result.best.feasible


def test_tpe_strategy_runs_when_optuna_is_installed():
    pytest.importorskip("optuna")
    result = search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=5,
        seed=0,
        strategy="tpe",
    )
    assert len(result.trials) == 5


def test_proposal_outside_the_bounds_is_refused():
    class Wild:
        def __init__(self, problem):
            pass

        def propose(self, trials, *, budget_left, q=1):
            return [Proposal(1.5, "wild")]

    with pytest.raises(ConfigError, match="outside the bounds"):
        search_sparsity(lambda s: (1.0, s), accuracy_threshold=0.5, strategy=Wild)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "objective",
    [lambda s: s, lambda s: -((s - 0.45) ** 2), lambda s: float(np.floor(s / 0.125))],
    ids=["monotone", "peaked", "steps"],
)
def test_no_point_is_evaluated_twice_with_a_deterministic_evaluator(seed, objective):
    """Exact evaluations: every trial at a distinct point, no replicate ever."""
    result = search_sparsity(
        lambda s: (logistic_accuracy(s), objective(s)),
        accuracy_threshold=0.9,
        budget=10,
        seed=seed,
        settings=FAST,
        deterministic=True,
    )
    points = [t.sparsity for t in result.trials]
    gaps = [abs(a - b) for i, a in enumerate(points) for b in points[:i]]
    assert min(gaps) >= DUPLICATE_TOLERANCE * 0.99
    assert all(t.stage != "replicate" for t in result.trials)


def test_a_strategy_that_repeats_a_point_stops_instead_of_wasting_a_trial():
    class Stubborn:
        def __init__(self, problem):
            pass

        def propose(self, trials, *, budget_left, q=1):
            return [Proposal(0.5, "stubborn")]

    calls = []
    result = search_sparsity(
        lambda s: calls.append(s) or (0.95, s), accuracy_threshold=0.9, budget=5, strategy=Stubborn
    )
    assert calls == [0.5] and result.stopped_early and "again" in result.reason


@pytest.mark.slow
def test_a_noisy_answer_near_the_threshold_is_replicated():
    """Margin within noise and budget left: the answer is measured again (stage 'replicate')."""
    rng = np.random.default_rng(0)

    def evaluate(s):
        accuracy = 0.9 + 0.004 * (0.6 - s) + rng.normal(0, 0.003)  # flat near the threshold
        return {"accuracy": accuracy, "objective": s, "accuracy_se": 0.003}

    result = search_sparsity(
        evaluate, accuracy_threshold=0.9, budget=10, seed=2, settings=FAST, monotone=True
    )
    replicates = [t for t in result.trials if t.stage == "replicate"]
    assert replicates, [(t.sparsity, t.stage) for t in result.trials]
    assert all(
        any(r.sparsity == t.sparsity for t in result.trials if t is not r) for r in replicates
    )


@pytest.mark.slow
def test_a_search_leaves_the_global_random_states_as_it_found_them():
    """The strategies' seeding never leaks: torch, numpy and random states are unchanged."""
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    search_sparsity(
        lambda s: (logistic_accuracy(s), s), accuracy_threshold=0.91, budget=6, settings=FAST
    )
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert random.getstate() == before[2]


@pytest.mark.slow
def test_monotone_objective_never_proposes_below_a_credibly_feasible_trial():
    """With memory-like objectives, a point below a known feasible one is dominated."""
    result = search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=10,
        seed=0,
        settings=FAST,
        monotone=True,
        deterministic=True,
    )
    for i, t in enumerate(result.trials):
        if t.stage in ("level-set", "objective"):
            earlier = [u.sparsity for u in result.trials[:i] if u.feasible]
            assert not earlier or t.sparsity > max(earlier) - 1e-9


@pytest.mark.slow
def test_answer_is_chosen_by_posterior_not_by_one_lucky_objective_reading():
    """A feasible point whose objective was measured badly (large spread) does not win on it.

    On a busy machine one speed measurement can read far too high; its spread says so.
    The objective GP weighs each reading by its standard error, and the answer is the
    trial with the best posterior mean, not the largest reading.
    """
    lucky = {}

    def evaluate(s):
        objective, se = s, 0.01
        if not lucky:  # the first trial (a low, feasible sparsity) reads 5x too high
            lucky["s"] = s
            objective, se = 5.0 * s, 2.0 * s
        return {"accuracy": logistic_accuracy(s), "objective": objective, "objective_se": se}

    result = search_sparsity(evaluate, accuracy_threshold=0.91, budget=10, seed=0, settings=FAST)
    assert lucky and result.best is not None
    assert max(t.objective for t in result.trials) == 5.0 * lucky["s"]  # the outlier was read
    assert result.best.sparsity > 0.6  # the real optimum is near s* = 0.73
    note = result.extra["answer_note"]  # the report says why the top reading lost
    assert note.startswith("trial 1 (sparsity") and "posterior objective is lower" in note


def test_failed_trials_are_named_when_nothing_is_feasible():
    def evaluate(s):
        raise RuntimeError("objective could not be measured: no example input")

    result = search_sparsity(evaluate, accuracy_threshold=0.9, budget=3, seed=0)
    assert result.best is None
    assert "3 of 3 trials failed" in result.reason and "could not be measured" in result.reason
    assert "trials failed" in result.summary()
