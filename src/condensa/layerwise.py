"""How a decoder's sparsity is spread over its blocks: uniform, OWL, or searched.

At one average sparsity, blocks do not all suffer alike. OWL (outlier-weighted
layerwise sparsity, Yin et al. 2024) prunes blocks with more outliers less: a block's
outlier ratio is the fraction of its Wanda scores ``|W_ij| * ||X_j||`` above
``threshold`` times their mean (on calibration inputs of the dense model); ratios are
scaled to ``[0, 2 * lam]`` and subtracted from the average, so the average is kept.

:func:`search_allocation` searches a two-parameter family that holds uniform
``(0, 0)`` and OWL ``(0, 2 * lam)``: block ``i`` of ``n`` gets

    sparsity + slope * (i / (n - 1) - 1/2) - weight * (o_i - mean o)

with ``o`` the outlier ratios scaled to ``[0, 1]``, shifted back to the average after
clipping to ``[0, 0.99]``. The caller's ``evaluate`` (compress with these sparsities,
return a validation perplexity) is minimized with :func:`condensa.search.minimize.
minimize`, starting from uniform and OWL: what the search returns is never worse than
both on the data it sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.functional import check_sparsity
from condensa.optim.calibration import blocks_of, statistics, walk
from condensa.search.minimize import Point, minimize

MAX_SPARSITY = 0.99
"""No block is pruned further than this."""


def block_outliers(
    model: nn.Module, batches: Sequence[object], threshold: float = 5.0
) -> list[float]:
    """OWL's outlier ratio of each block of ``model`` (not modified) on ``batches``.

    Raises:
        ConfigError: a model without a list of blocks, or ``threshold`` not above 0.

    """
    if not threshold > 0:
        raise ConfigError(f"threshold must be above 0, got {threshold!r}")
    if blocks_of(model) is None:
        raise ConfigError(f"{type(model).__name__} has no list of blocks to allocate over")
    ratios = []
    for _prefix, block, run in walk(model, batches):
        linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        stats = statistics(run, linears)
        scores = torch.cat(
            [
                (m.weight.detach().abs() * stats[n].hessian.diagonal().sqrt()).flatten()
                for n, m in linears.items()
            ]
        )
        ratios.append(float((scores > threshold * scores.mean()).float().mean()))
    return ratios


def _recentred(raw: Sequence[float], sparsity: float) -> list[float]:
    """``clip(sparsity + raw_i + c)`` with the shift ``c`` that keeps the average (bisection)."""
    low, high = -2.0, 2.0
    for _ in range(60):
        shift = (low + high) / 2
        mean = sum(min(max(sparsity + r + shift, 0.0), MAX_SPARSITY) for r in raw) / len(raw)
        low, high = (shift, high) if mean < sparsity else (low, shift)
    return [min(max(sparsity + r + (low + high) / 2, 0.0), MAX_SPARSITY) for r in raw]


def shaped_sparsities(
    outliers: Sequence[float], sparsity: float, slope: float, weight: float
) -> list[float]:
    """Each block's sparsity in the family above (average ``sparsity``)."""
    check_sparsity(sparsity)
    n = len(outliers)
    if n < 2:
        raise ConfigError(f"an allocation needs at least 2 blocks, got {n}")
    spread = max(outliers) - min(outliers)
    scaled = [(o - min(outliers)) / spread if spread > 0 else 0.0 for o in outliers]
    mean = sum(scaled) / n
    raw = [slope * (i / (n - 1) - 0.5) - weight * (o - mean) for i, o in enumerate(scaled)]
    return _recentred(raw, sparsity)


def owl_sparsities(outliers: Sequence[float], sparsity: float, lam: float = 0.08) -> list[float]:
    """OWL's sparsity per block: ``sparsity - (D_i - mean D)``, ``D`` ratios in ``[0, 2 lam]``."""
    if not 0 <= lam <= 0.5:
        raise ConfigError(f"lam must be in [0, 0.5], got {lam!r}")
    return shaped_sparsities(outliers, sparsity, 0.0, 2 * lam)


def block_allocation(model: nn.Module, sparsities: Sequence[float]) -> dict[str, float]:
    """``{block regex: sparsity}`` for a scheme's ``allocation=`` (one entry per block).

    Raises:
        ConfigError: a model without a list of blocks, or a count that is not one
            sparsity per block.

    """
    found = blocks_of(model)
    if found is None:
        raise ConfigError(f"{type(model).__name__} has no list of blocks to allocate over")
    prefix, blocks = found
    if len(sparsities) != len(blocks):
        raise ConfigError(f"{len(sparsities)} sparsities given for {len(blocks)} blocks")
    return {
        rf"{re.escape(prefix)}\.{i}(\..*)?": check_sparsity(s) for i, s in enumerate(sparsities)
    }


@dataclass(frozen=True)
class AllocationSearch:
    """What :func:`search_allocation` found, with the two designs it started from."""

    sparsity: float
    outliers: tuple[float, ...]
    points: tuple[Point, ...]

    @property
    def uniform(self) -> Point:
        """The uniform allocation's evaluation."""
        return self.points[0]

    @property
    def owl(self) -> Point:
        """OWL's evaluation."""
        return self.points[1]

    @property
    def best(self) -> Point:
        """The lowest value seen (the first such point)."""
        return min(self.points, key=lambda p: p.value)

    def sparsities(self, point: Point | None = None) -> list[float]:
        """Per-block sparsities of ``point`` (default: the best)."""
        x = (point or self.best).x
        return shaped_sparsities(self.outliers, self.sparsity, x[0], x[1])


def search_allocation(
    evaluate: Callable[[list[float]], float],
    outliers: Sequence[float],
    sparsity: float,
    *,
    budget: int = 12,
    lam: float = 0.08,
    max_slope: float = 0.2,
    max_weight: float = 0.4,
    seed: int = 0,
) -> AllocationSearch:
    """Per-block sparsities at an average of ``sparsity`` that minimize ``evaluate``.

    Args:
        evaluate: per-block sparsities -> a value to minimize (validation perplexity).
        outliers: :func:`block_outliers` of the dense model.
        sparsity: the average sparsity, kept by every allocation tried.
        budget: evaluations, uniform and OWL included (at least 2).
        lam: OWL's ``lam`` for the OWL starting point.
        max_slope: the depth slope is searched in ``[-max_slope, max_slope]``.
        max_weight: the outlier weight in ``[0, max_weight]`` (at least ``2 * lam``).
        seed: the acquisition optimizer's seed.

    """
    if not 2 * lam <= max_weight:
        raise ConfigError(f"max_weight {max_weight} must be at least 2 * lam = {2 * lam}")
    if not max_slope > 0:
        raise ConfigError(f"max_slope must be above 0, got {max_slope!r}")
    owl_sparsities(outliers, sparsity, lam)  # validates lam, sparsity and outliers

    def f(x: tuple[float, ...]) -> float:
        return evaluate(shaped_sparsities(outliers, sparsity, x[0], x[1]))

    points = minimize(
        f,
        [(-max_slope, max_slope), (0.0, max_weight)],
        budget=budget,
        start=[(0.0, 0.0), (0.0, 2 * lam)],
        seed=seed,
    )
    return AllocationSearch(sparsity, tuple(outliers), tuple(points))
