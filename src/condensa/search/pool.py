"""Where a round's trials run: one after another here, or side by side on Ray workers.

A pool is anything with ``run(evaluate, points)`` yielding ``(position, outcome)``
as each trial completes, where ``outcome`` is a :class:`Outcome` (the value
``evaluate`` returned, or the exception it raised, and the seconds it took). The search
loop journals trials in that completion order. :class:`SerialPool` is the default;
:class:`~condensa.search.ray_pool.RayPool` (the ``condensa[ray]`` extra) runs them on
Ray workers (actors) with declared resources.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from condensa.errors import check_int
from condensa.search.trial import Point


@dataclass(frozen=True)
class Outcome:
    """What one call of ``evaluate`` gave: a value or an error, and its wall time."""

    value: Any
    error: BaseException | None
    wall_s: float


def call(evaluate: Callable[[Point], Any], point: Point) -> Outcome:
    """``evaluate(point)``, timed, with an ordinary exception caught into the outcome.

    Interrupts (``KeyboardInterrupt``, ``SystemExit``) are not caught.
    """
    start = time.perf_counter()
    try:
        value = evaluate(point)
    except Exception as exc:  # noqa: BLE001 - the loop decides: failed trial or stop
        return Outcome(None, exc, time.perf_counter() - start)
    return Outcome(value, None, time.perf_counter() - start)


@runtime_checkable
class TrialPool(Protocol):
    """Runs the trials of a round; see the module docstring."""

    workers: int
    """How many trials run at once (the search proposes that many points per round)."""

    def run(
        self, evaluate: Callable[[Point], Any], points: Sequence[Point]
    ) -> Iterator[tuple[int, Outcome]]:
        """Evaluate ``points``; yield ``(position in points, outcome)`` as each completes."""
        ...


class SerialPool:
    """Trials one after another in this process (the default).

    ``workers`` > 1 still runs them one at a time, but has the search propose that many
    points per round: the rounds a parallel pool would take, without the parallelism
    (for comparing batch sizes on cheap problems).
    """

    def __init__(self, workers: int = 1) -> None:
        check_int("workers", workers)
        self.workers = workers

    def run(
        self, evaluate: Callable[[Point], Any], points: Sequence[Point]
    ) -> Iterator[tuple[int, Outcome]]:
        """Evaluate ``points`` in order."""
        for position, point in enumerate(points):
            yield position, call(evaluate, point)
