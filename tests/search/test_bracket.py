"""Exact feasibility pins the boundary down: the bracket refinement of deterministic searches.

Invariants: a bracket is the largest feasible point and the nearest infeasible one above
it; each refinement lands strictly inside it, at least a resolution from either end,
and the width at least halves every two steps; a deterministic search locates a smooth
boundary as finely as bisection; observed-feasible trials of a deterministic evaluator
count as feasible even with a zero margin.
"""

import math

import pytest

from condensa.search import TwoStageSettings, search_sparsity
from condensa.search.bracket import bracket, refine
from tests.search.conftest import logistic_accuracy, s_star

FAST = TwoStageSettings(grid=201, samples=64)


def test_no_bracket_without_both_sides():
    assert bracket([(0.2, 1.0), (0.5, 0.1)]) is None  # nothing infeasible
    assert bracket([(0.2, -1.0), (0.5, -0.1)]) is None  # nothing feasible
    assert bracket([(0.6, 0.5), (0.4, -0.3)]) is None  # infeasible only below
    found = bracket([(0.1, 2.0), (0.6, 0.5), (0.4, -0.3), (0.9, -4.0), (0.7, -1.0)])
    assert (found.low, found.high) == (0.6, 0.7)


def test_refinement_stays_inside_and_halves_every_two_steps():
    """On a collapsing curve (flat, then a cliff) the width still shrinks geometrically."""

    def margin(s):
        return 1.0 if s < 0.6137 else -50.0

    points = [(0.1, margin(0.1)), (0.95, margin(0.95))]
    widths = []
    for _ in range(12):
        point = refine(points, points[:-1], 0.001)
        if point is None:
            break
        current = bracket(points)
        assert current.low + 0.001 <= point <= current.high - 0.001
        points.append((point, margin(point)))
        widths.append(bracket(points).width)
    assert widths[-1] < 0.0025 * 2.5
    assert all(b <= a / 2 + 1e-12 for a, b in zip(widths, widths[2:], strict=False))
    assert bracket(points).low <= 0.6137 < bracket(points).high


def test_a_narrow_bracket_is_final():
    assert refine([(0.5, 0.1), (0.502, -0.1)], [], 0.001) is None


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_deterministic_search_locates_a_smooth_boundary_like_bisection(seed):
    """Budget 10 on a memory-like objective: within 0.003 below the true boundary."""
    result = search_sparsity(
        lambda s: (logistic_accuracy(s), 1.0 / (1.0 - s)),
        accuracy_threshold=0.91,
        budget=10,
        seed=seed,
        settings=FAST,
        monotone=True,
        deterministic=True,
    )
    boundary = s_star(0.91)
    assert result.best is not None
    assert boundary - 0.003 <= result.best.sparsity <= boundary + 1e-9


@pytest.mark.slow
def test_a_zero_margin_plateau_counts_as_feasible_when_measured_exactly():
    """Accuracy exactly at the threshold up to 0.8: the answer lies on the plateau's far end."""

    def evaluate(s):
        accuracy = 0.9 if s <= 0.8 else 0.9 - 0.5 * (s - 0.8) - 0.01
        return accuracy, math.floor(s / 0.125) * 0.125 + 1.0

    result = search_sparsity(
        evaluate, accuracy_threshold=0.9, budget=10, seed=3, settings=FAST, deterministic=True
    )
    assert result.best is not None and 0.75 <= result.best.sparsity <= 0.8


def _trial(index, s, accuracy, se=0.01, threshold=0.9):
    from condensa.search import Trial

    return Trial(index, s, accuracy, s, accuracy >= threshold, extra={"accuracy_se": se})


def test_measured_feasibility_pools_the_readings_at_one_point():
    from condensa.search.choice import measured_feasibility

    trials = [
        _trial(0, 0.3, 0.95),  # 5 standard errors above: certain
        _trial(1, 0.5, 0.905),  # half a standard error above
        _trial(2, 0.5, 0.905),  # its replicate: the pooled error shrinks by sqrt(2)
        _trial(3, 0.7, 0.85),
    ]
    p = measured_feasibility(trials, lambda a: a - 0.9).tolist()
    assert p[0] > 0.999 and p[3] < 1e-6
    assert p[1] == p[2] == pytest.approx(0.7602, abs=1e-3)  # Phi(0.5 * sqrt(2))
    no_errors = [_trial(0, 0.3, 0.95)]
    no_errors[0].extra.clear()
    assert measured_feasibility(no_errors, lambda a: a - 0.9) is None


@pytest.mark.slow
def test_a_trial_measured_far_above_the_threshold_stays_credible_next_to_a_cliff():
    """Accuracy steps down 1.5 points past 0.35; the feasible trial just before the step wins.

    A stationary GP blurs the step and doubts that trial; its own readings (ten standard
    errors above the threshold) say it is feasible. Without them this search answered
    0.2475, a sparsity well inside the feasible side.
    """
    import numpy as np

    rng = np.random.default_rng(2)

    def evaluate(s):
        step = 1.5 * (s > 0.35) + 1.5 * (s > 0.6)
        accuracy = 90.0 - step - 40 * max(0.0, s - 0.85) + rng.normal(0, 0.1)
        return {"accuracy": accuracy, "objective": 1 / (1 - s), "accuracy_se": 0.1}

    result = search_sparsity(
        evaluate, accuracy_threshold=89.0, budget=10, bounds=(0.0, 0.99), seed=2,
        settings=FAST, monotone=True,
    )  # fmt: skip
    assert result.best is not None and 0.34 <= result.best.sparsity <= 0.35
