"""search_sparsity: the answer is an evaluated feasible trial, the budget is never exceeded,
failures and infeasible problems are reported, known optima are found.
"""

import json
import math
import random
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from condensa import ConfigError
from condensa.search import Constraint, TwoStageSettings, plot_search, search_sparsity
from tests.search.conftest import logistic_accuracy, s_star

FAST = TwoStageSettings(grid=201, samples=64)


@pytest.mark.slow
def test_finds_largest_feasible_sparsity_for_monotone_objective():
    """Objective = sparsity: the answer is s*, found within 0.01 in at most 10 calls."""
    calls = []

    def evaluate(s):
        calls.append(s)
        return logistic_accuracy(s), s

    result = search_sparsity(evaluate, accuracy_threshold=0.91, seed=0, settings=FAST)
    assert len(calls) <= 10
    assert result.best is not None and result.best.feasible
    assert result.best.accuracy >= 0.91
    assert abs(result.best.sparsity - s_star(0.91)) < 0.01
    assert result.s_acc == pytest.approx(s_star(0.91), abs=0.01)
    assert result.s_acc_std is not None and result.s_acc_std < 0.01


@pytest.mark.slow
def test_best_is_an_evaluated_feasible_trial():
    result = search_sparsity(
        lambda s: (logistic_accuracy(s), -((s - 0.5) ** 2)),
        accuracy_threshold=0.91,
        seed=3,
        settings=FAST,
    )
    assert result.best in result.trials
    assert result.best.feasible and result.best.accuracy >= 0.91
    assert result.best.objective == max(t.objective for t in result.trials if t.feasible)
    assert abs(result.best.sparsity - 0.5) < 0.05  # interior optimum of a peaked objective


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(
    budget=st.integers(1, 7),
    seed=st.integers(0, 1000),
    center=st.floats(0.2, 0.9),
    noise=st.sampled_from([0.0, 0.003]),
)
def test_budget_is_never_exceeded(budget, seed, center, noise):
    """Property: evaluate is called at most `budget` times, for any problem."""
    rng = random.Random(seed)
    calls = []

    def evaluate(s):
        calls.append(s)
        return logistic_accuracy(s, center=center) + rng.gauss(0, noise), s

    result = search_sparsity(
        evaluate, accuracy_threshold=0.9, budget=budget, seed=seed, settings=FAST
    )
    assert len(calls) == len(result.trials) <= budget
    assert all(0.0 <= s <= 0.99 for s in calls)


@pytest.mark.slow
def test_infeasible_problem_is_reported_with_closest_trial():
    result = search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.95,
        budget=6,
        seed=0,
        settings=FAST,
    )
    assert result.best is None and not result.feasible
    assert result.closest is not None
    assert result.closest.accuracy == max(t.accuracy for t in result.trials)
    assert "no feasible sparsity" in result.summary()
    assert len(result.trials) <= 6


@pytest.mark.slow
def test_failed_trials_are_recorded_and_counted(tmp_path):
    """Raising, NaN, None and wrong shapes: recorded as failed, counted, search goes on."""
    scripted = [RuntimeError("the method diverged"), (math.nan, 1.0), None, (1.0,)]
    calls = []

    def evaluate(s):
        calls.append(s)
        if len(calls) <= len(scripted):
            outcome = scripted[len(calls) - 1]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return logistic_accuracy(s), s

    result = search_sparsity(
        evaluate,
        accuracy_threshold=0.91,
        budget=8,
        seed=0,
        journal=tmp_path / "j.jsonl",
        settings=FAST,
    )
    failed = [t for t in result.trials if t.failed]
    assert len(failed) == 4 and len(result.trials) == len(calls) == 8
    assert "RuntimeError: the method diverged" in failed[0].error
    assert "non-finite accuracy" in failed[1].error
    assert "must return (accuracy, objective), got None" in failed[2].error
    assert "must return (accuracy, objective), got (1.0,)" in failed[3].error
    lines = [json.loads(x) for x in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert lines[1]["trial"]["error"].startswith("RuntimeError")
    assert result.best is not None and not result.best.failed


@pytest.mark.slow
def test_evaluate_may_return_a_mapping_with_extras():
    result = search_sparsity(
        lambda s: {"accuracy": logistic_accuracy(s), "objective": s, "macs": 1e6 * (1 - s)},
        accuracy_threshold=0.91,
        budget=4,
        seed=0,
        settings=FAST,
    )
    assert all("macs" in t.extra for t in result.trials)


@pytest.mark.slow
def test_extras_keep_lists_and_tables_as_data(tmp_path):
    """Structured extras (a method's per-step record) survive the journal as JSON data."""
    record = [{"steps": 10, "val": np.float64(0.5)}, {"steps": 20, "val": 0.75}]
    journal = tmp_path / "j.jsonl"

    def evaluate(s):
        return {"accuracy": logistic_accuracy(s), "objective": s, "recovery": record,
                "shape": (2, 3), "device": torch.device("cpu")}  # fmt: skip

    first = search_sparsity(evaluate, accuracy_threshold=0.91, budget=2, seed=0,
                            settings=FAST, journal=journal)  # fmt: skip
    again = search_sparsity(evaluate, accuracy_threshold=0.91, budget=2, seed=0,
                            settings=FAST, journal=journal)  # fmt: skip
    for trial in first.trials + again.trials:
        assert trial.extra["recovery"] == [{"steps": 10, "val": 0.5}, {"steps": 20, "val": 0.75}]
        assert trial.extra["shape"] == [2, 3] and trial.extra["device"] == "cpu"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"budget": 0}, "budget must be a positive integer, got 0"),
        ({"bounds": (0.5, 0.5)}, "0 <= low < high < 1"),
        ({"bounds": (-0.1, 0.5)}, "0 <= low < high < 1"),
        ({"bounds": (0.0, 1.0)}, "0 <= low < high < 1"),
        ({"bounds": "wide"}, "bounds must be"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        search_sparsity(lambda s: (1.0, s), accuracy_threshold=0.9, **kwargs)


def test_constraint_forms():
    """Absolute threshold, absolute drop, relative drop, lower-is-better."""
    assert Constraint.make(accuracy_threshold=0.9).threshold == 0.9
    assert Constraint.make(max_drop=0.01, reference_accuracy=0.92).threshold == pytest.approx(0.91)
    relative = Constraint.make(max_relative_drop=0.01, reference_accuracy=0.9)
    assert relative.threshold == pytest.approx(0.891)
    ppl = Constraint.make(max_relative_drop=0.1, reference_accuracy=100.0, lower_is_better=True)
    assert ppl.threshold == pytest.approx(110.0)
    assert ppl.feasible(105.0) and not ppl.feasible(111.0)
    with pytest.raises(ConfigError, match="state the constraint once"):
        Constraint.make(accuracy_threshold=0.9, max_drop=0.01, reference_accuracy=0.9)
    with pytest.raises(ConfigError, match="needs reference_accuracy"):
        Constraint.make(max_drop=0.01)
    with pytest.raises(ConfigError, match="max_drop must be >= 0"):
        Constraint.make(max_drop=-0.01, reference_accuracy=0.9)


@pytest.mark.slow
def test_lower_is_better_search():
    """Perplexity rises with sparsity; at most 10% above 100."""
    result = search_sparsity(
        lambda s: (100 + 200 * s**4, s),
        max_relative_drop=0.1,
        reference_accuracy=100.0,
        lower_is_better=True,
        seed=0,
        settings=FAST,
    )
    expected = (10 / 200) ** 0.25
    assert result.best.accuracy <= 110.0
    assert abs(result.best.sparsity - expected) < 0.02


@pytest.mark.slow
def test_multi_dimensional_search_finds_known_optimum():
    """3-D: maximize s1 + s2 + s3 subject to a separable accuracy cliff at (0.6, 0.5, 0.7)."""

    def evaluate(v):
        drop = 4 * max(0, v[0] - 0.6) + 4 * max(0, v[1] - 0.5) + 4 * max(0, v[2] - 0.7)
        return 0.9 - drop, sum(v)

    result = search_sparsity(
        evaluate, accuracy_threshold=0.88, bounds=[(0.0, 0.9)] * 3, budget=22, seed=0
    )
    best = result.best
    assert best is not None and isinstance(best.sparsity, tuple) and len(best.sparsity) == 3
    assert best.accuracy >= 0.88
    assert best.objective > 0.9 * (0.6 + 0.5 + 0.7)  # within 10% of the optimum's 1.8 + slack 0.02


@pytest.mark.slow
def test_plot_writes_png(tmp_path):
    result = search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=5,
        seed=0,
        settings=FAST,
    )
    path = plot_search(result, tmp_path / "search.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_prints_a_measured_objective_in_its_unit_and_bytes_readably():
    """A file-size objective reads as megabytes, not as the negated score searched."""

    def evaluate(s):
        size = 2_000_000 * (1 - s)
        return {
            "accuracy": 1 - 0.1 * s,
            "objective": -size,
            "objective_value": size,
            "objective_unit": "bytes",
        }

    result = search_sparsity(evaluate, accuracy_threshold=0.95, budget=4, seed=0)
    assert re.search(r"objective \d\.\d+ MB under", result.summary())
    assert "-" not in result.summary().split("objective ")[1].split(" under")[0]
