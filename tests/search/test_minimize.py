"""Expected-improvement minimization over a box: start points first, improvement, errors."""

import math

import pytest

from condensa import ConfigError
from condensa.search.minimize import minimize


def bowl(x):
    return (x[0] - 0.3) ** 2 + (x[1] + 0.1) ** 2


def test_start_points_come_first_and_the_minimum_is_approached():
    points = minimize(bowl, [(-1, 1), (-1, 1)], budget=10, start=[(0.0, 0.0), (0.5, 0.5)])
    assert [p.x for p in points[:2]] == [(0.0, 0.0), (0.5, 0.5)]
    assert [p.how for p in points[:3]] == ["start", "start", "expected improvement"]
    best = min(points, key=lambda p: p.value)
    assert len(points) == 10 and best.value < 0.01 < points[0].value


def test_one_start_point_is_completed_with_a_distinct_quasi_random_one_and_is_seeded():
    one = minimize(bowl, [(-1, 1), (-1, 1)], budget=4, start=[(0.0, 0.0)], seed=3)
    again = minimize(bowl, [(-1, 1), (-1, 1)], budget=4, start=[(0.0, 0.0)], seed=3)
    assert one[1].x != one[0].x and one[1].how == "start"
    assert [p.x for p in one] == [p.x for p in again]
    assert all(-1 <= v <= 1 for p in one for v in p.x)


@pytest.mark.parametrize(
    ("bounds", "start", "budget", "message"),
    [
        ([], (), 3, "at least one"),
        ([(1, 0)], (), 3, "low < high"),
        ([(0, math.inf)], (), 3, "finite"),
        ([(0, 1)], [(2.0,)], 3, "not inside the bounds"),
        ([(0, 1), (0, 1)], [(0.5,)], 3, "not inside the bounds"),
        ([(0, 1)], [(0.1,), (0.2,), (0.3,)], 2, "below the 3 starting points"),
        ([(0, 1)], (), 0, "budget"),
    ],
)
def test_bad_arguments_are_refused_before_any_evaluation(bounds, start, budget, message):
    calls = []
    with pytest.raises(ConfigError, match=message):
        minimize(lambda x: calls.append(x) or 0.0, bounds, budget=budget, start=start)
    assert calls == []


def test_a_non_finite_value_is_named():
    with pytest.raises(ConfigError, match="returned nan"):
        minimize(lambda x: math.nan, [(0, 1)], budget=3)
