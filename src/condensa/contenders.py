"""The search's last word on speed: its credible contenders timed side by side.

One speed reading per trial is noisy on a shared machine: states that last a second
or more change a small model's speedup over the dense one by up to 2x, and a reading
falls in one of them. The answer rule weighs such readings with a surrogate, but two
contenders a few percent apart are told apart only by timing them in the same rounds,
which costs seconds (no compression). :func:`final_comparison` does that for the
trials the answer was chosen from and returns the fastest.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from condensa.distributed import measured_on_main
from condensa.inputs import Inputs
from condensa.objectives import Measurement
from condensa.search import SearchResult
from condensa.search.trial import Trial

FINAL_ROUNDS = 20
"""Interleaved rounds of the final comparison (each times the dense model and every contender)."""
FINAL_SECONDS = 30.0
"""No round of the final comparison starts after this long (at least two run)."""
MOST_CONTENDERS = 3
"""The answer and at most this many minus one others, by posterior objective."""


def contenders(result: SearchResult, most: int = MOST_CONTENDERS) -> list[Trial]:
    """The answer and the other candidates with the best posterior objective, one per sparsity.

    Candidates are the trials the answer was chosen from (``result.extra["candidates"]``);
    without a surrogate they are ranked by their mean reading.
    """
    if result.best is None:
        return []
    indices = result.extra.get("candidates", [])
    pool = [t for t in result.trials if t.index in indices and not t.failed]
    by_point: dict[float, list[Trial]] = {}
    for t in pool:
        by_point.setdefault(float(t.sparsity), []).append(t)  # type: ignore[arg-type]
    answer = float(result.best.sparsity)  # type: ignore[arg-type]
    others = sorted(
        (s for s in by_point if s != answer),
        key=lambda s: _posterior(result, s, by_point[s]),
        reverse=True,
    )
    return [result.best] + [by_point[s][0] for s in others[: most - 1]]


def _posterior(result: SearchResult, sparsity: float, readings: list[Trial]) -> float:
    """The objective posterior mean at ``sparsity`` (nearest grid point), else the mean reading."""
    view = result.surrogate
    if view is None:
        return sum(float(t.objective or 0.0) for t in readings) / len(readings)
    i = min(bisect.bisect_left(view.grid, sparsity), len(view.grid) - 1)
    if i > 0 and sparsity - view.grid[i - 1] < view.grid[i] - sparsity:
        i -= 1
    return float(view.objective_mean[i])


def final_comparison(
    result: SearchResult,
    objective: Any,
    reference: nn.Module,
    model_of: Callable[[float], nn.Module | None],
    example_inputs: Inputs,
    *,
    rounds: int = FINAL_ROUNDS,
    seconds: float = FINAL_SECONDS,
) -> SearchResult:
    """``result`` with the fastest contender as its answer, timed side by side.

    The contenders (:func:`contenders`) whose models ``model_of(sparsity)`` can give are
    timed with ``objective.compare`` (a speed objective, e.g.
    :class:`~condensa.objectives.Throughput`) against ``reference`` in ``rounds``
    interleaved rounds (fewer when they would take over ``seconds``); the one with
    the best median speedup becomes the answer and ``extra["final_comparison"]``
    records every contender's reading. ``result`` is returned as it is when the
    objective cannot compare, the answer's model is not at hand, or fewer than two
    contenders have a model.
    """
    if not callable(getattr(objective, "compare", None)):
        return result
    models: dict[float, nn.Module] = {}
    trial_at: dict[float, Trial] = {}
    for t in contenders(result):
        model = model_of(float(t.sparsity))  # type: ignore[arg-type]
        if model is not None:
            models[float(t.sparsity)], trial_at[float(t.sparsity)] = model, t  # type: ignore[arg-type]
    if len(models) < 2 or result.best not in trial_at.values():
        return result  # nothing to compare, or the answer itself cannot be timed
    readings: dict[float, Measurement] = measured_on_main(
        lambda: objective.compare(reference, models, example_inputs, rounds=rounds, seconds=seconds)
    )()
    fastest = max(readings, key=lambda s: (readings[s].value, s))
    record = [{"trial": trial_at[s].index, "sparsity": s, **readings[s].record()} for s in readings]
    extra = {**result.extra, "final_comparison": record}
    best = trial_at[fastest]
    if best is not result.best:
        before = float(result.best.sparsity)  # type: ignore[arg-type, union-attr]
        extra["answer_note"] = (
            f"timed side by side in {len(readings[fastest].samples)} rounds, sparsity "
            f"{fastest:.4f} ran at {readings[fastest].value:.3g}x and the surrogate's "
            f"choice {before:.4f} at {readings[before].value:.3g}x"
        )
    return dataclasses.replace(result, best=best, extra=extra)
