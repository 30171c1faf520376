"""Pinning the feasibility boundary down when accuracy is measured exactly.

With a deterministic evaluator (direct compression) a trial's feasibility is a fact,
not an estimate: the largest feasible trial and the nearest infeasible one above it
*bracket* the boundary. A surrogate cannot locate a boundary faster than bisection in
the worst case, and its grid limits its resolution, so once a bracket exists the
boundary is refined inside it: a secant step on the measured margins (fast on smooth
accuracy curves), kept away from the ends, and a plain bisection whenever the previous
refinement did not halve the bracket (so the width at least halves every two steps).
Margins are clipped as the surrogate clips them (:func:`~condensa.search.surrogate.clip_margin`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from condensa.search.trial import Trial

INSET = 0.1
"""A secant step lands at least this fraction of the bracket inside it."""
RESOLUTION = 0.0015
"""Closest approach to an evaluated point, as a fraction of the bounds (the search loop
refuses points within 0.1 % of them)."""


@dataclass(frozen=True)
class Bracket:
    """The largest feasible point ``low`` and the nearest infeasible point above it."""

    low: float
    low_margin: float
    high: float
    high_margin: float

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low


def bracket(points: Sequence[tuple[float, float]]) -> Bracket | None:
    """The bracket of ``(sparsity, margin)`` points (margin >= 0: feasible), if any.

    Example:
        >>> bracket([(0.2, 1.0), (0.5, 0.3), (0.9, -2.0), (0.7, -0.5)])
        Bracket(low=0.5, low_margin=0.3, high=0.7, high_margin=-0.5)

    """
    feasible = [(s, m) for s, m in points if m >= 0]
    if not feasible:
        return None
    low, low_margin = max(feasible)
    above = [(s, m) for s, m in points if m < 0 and s > low]
    if not above:
        return None
    high, high_margin = min(above)
    return Bracket(low, low_margin, high, high_margin)


def refine(
    points: Sequence[tuple[float, float]],
    previous: Sequence[tuple[float, float]],
    resolution: float,
) -> float | None:
    """The next point inside the bracket of ``points``, or None when it is narrow enough.

    Args:
        points: ``(sparsity, margin)`` of every exact trial.
        previous: the same without the latest trial (to see if it halved the bracket).
        resolution: no point closer than this to either end is proposed; a bracket
            narrower than 2.5 times it is final.

    Example:
        >>> refine([(0.5, 1.0), (0.9, -1.0)], [], 0.001)  # secant: the zero crossing
        0.7

    """
    current = bracket(points)
    if current is None or current.width < 2.5 * resolution:
        return None
    before = bracket(previous)
    middle = (current.low + current.high) / 2
    if before is not None and current.width > before.width / 2 + 1e-12:
        return middle
    # margins clipped as the surrogate clips them: a collapse far past the boundary
    # (92 % -> 30 %) must not pull every secant step against the feasible end
    positive = max(m for _, m in points)
    clip = 2.0 * min(positive, -min(m for _, m in points)) if positive > 0 else math.inf
    low_margin, high_margin = min(current.low_margin, clip), max(current.high_margin, -clip)
    drop = low_margin - high_margin
    secant = current.low + current.width * (low_margin / drop if drop > 0 else 0.5)
    inset = max(INSET * current.width, resolution)
    return min(max(secant, current.low + inset), current.high - inset)


def margins(trials: Sequence[Trial], margin: Callable[[float], float]) -> list[tuple[float, float]]:
    """``(sparsity, margin)`` of usable ``trials``, in order: what :func:`bracket` takes."""
    return [(float(t.sparsity), margin(float(t.accuracy))) for t in trials]  # type: ignore[arg-type]


def boundary_point(
    trials: Sequence[Trial], margin: Callable[[float], float], span: float
) -> float | None:
    """:func:`refine` on usable ``trials`` (in order); ``span`` is the width of the bounds."""
    points = margins(trials, margin)
    return refine(points, points[:-1], resolution=RESOLUTION * span)
