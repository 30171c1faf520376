"""Minimizing an expensive, nearly noise-free function over a box: BoTorch's expected improvement.

Used where the question is not "how far can we go under a constraint" (that is
:func:`~condensa.search.loop.search_sparsity`) but "which shape is best at a fixed
budget of compression", e.g. how a fixed average sparsity is spread over a decoder's
blocks (:mod:`condensa.layerwise`). The given starting points (the known designs to
beat) are evaluated first, then each point maximizes log expected improvement under a
Gaussian process fitted to everything seen so far.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from condensa.errors import ConfigError, check_int


@dataclass(frozen=True)
class Point:
    """One evaluation: where (``x``), the value, and how it was chosen."""

    x: tuple[float, ...]
    value: float
    how: str


def _check(bounds: Sequence[tuple[float, float]], start: Sequence[Sequence[float]]) -> None:
    if not bounds:
        raise ConfigError("minimize needs at least one (low, high) bound")
    for low, high in bounds:
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(
                f"each bound must be a finite (low, high) with low < high, got {(low, high)}"
            )
    for x in start:
        inside = len(x) == len(bounds) and all(
            lo <= v <= hi for v, (lo, hi) in zip(x, bounds, strict=True)
        )
        if not inside:
            raise ConfigError(f"starting point {tuple(x)} is not inside the bounds {list(bounds)}")


def _next(points: list[Point], bounds: torch.Tensor, seed: int) -> tuple[float, ...]:
    """The point of largest log expected improvement (GP on unit-scaled inputs)."""
    from botorch.acquisition import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    x = torch.tensor([p.x for p in points], dtype=torch.float64)
    y = -torch.tensor([[p.value] for p in points], dtype=torch.float64)  # BoTorch maximizes
    model = SingleTaskGP(
        x, y, input_transform=Normalize(x.shape[1], bounds=bounds), outcome_transform=Standardize(1)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitting chatter (small data, jitter added)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        torch.manual_seed(seed)
        best, _ = optimize_acqf(
            LogExpectedImprovement(model, best_f=y.max()),
            bounds=bounds,
            q=1,
            num_restarts=8,
            raw_samples=256,
        )
    return tuple(float(v) for v in best[0])


def minimize(
    f: Callable[[tuple[float, ...]], float],
    bounds: Sequence[tuple[float, float]],
    *,
    budget: int,
    start: Sequence[Sequence[float]] = (),
    seed: int = 0,
) -> list[Point]:
    """Evaluate ``f`` ``budget`` times: the ``start`` points, then expected-improvement picks.

    Args:
        f: the function (lower is better); a non-finite value is refused.
        bounds: ``(low, high)`` per coordinate.
        budget: evaluations in all (at least ``len(start)`` and 1).
        start: points evaluated first, in order (with fewer than two, seeded
            quasi-random points are added so the surrogate starts from two).
        seed: makes the acquisition's optimization reproducible.

    Returns:
        Every evaluation in order; the best is ``min(points, key=lambda p: p.value)``.

    Raises:
        ConfigError: bad bounds, a start point outside them, a budget below the start
            points, or ``f`` returning a non-finite value.

    """
    check_int("budget", budget)
    _check(bounds, start)
    starts = [tuple(float(v) for v in x) for x in start]
    sobol = torch.quasirandom.SobolEngine(len(bounds), scramble=True, seed=seed)
    while len(starts) < 2:
        unit = sobol.draw(1)[0].tolist()
        starts.append(tuple(lo + u * (hi - lo) for u, (lo, hi) in zip(unit, bounds, strict=True)))
    if budget < len(starts):
        raise ConfigError(f"budget {budget} is below the {len(starts)} starting points")
    box = torch.tensor(list(zip(*bounds, strict=True)), dtype=torch.float64)
    points: list[Point] = []
    for i in range(budget):
        x = starts[i] if i < len(starts) else _next(points, box, seed + i)
        value = float(f(x))
        if not math.isfinite(value):
            raise ConfigError(f"the function returned {value} at {x}; it must be finite")
        points.append(Point(x, value, "start" if i < len(starts) else "expected improvement"))
    return points
