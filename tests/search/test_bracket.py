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
