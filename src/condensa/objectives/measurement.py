"""A measured value with its unit and spread."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Measurement:
    """What an objective returns.

    Attributes:
        value: the median (or the exact value for counts).
        unit: e.g. ``"samples/s"``, ``"s"``, ``"bytes"``, ``"MACs"``.
        spread: interquartile range of the samples (0 for exact counts).
        higher_is_better: the direction; the search maximizes ``score``.
        samples: the raw samples.

    """

    value: float
    unit: str
    spread: float = 0.0
    higher_is_better: bool = True
    samples: tuple[float, ...] = field(default=(), repr=False)

    @property
    def score(self) -> float:
        """The value to maximize: ``value``, or ``-value`` when lower is better."""
        return self.value if self.higher_is_better else -self.value

    @classmethod
    def of(
        cls, samples: Sequence[float], unit: str, *, higher_is_better: bool = True
    ) -> Measurement:
        """Median and interquartile range of ``samples``."""
        values = tuple(float(s) for s in samples)
        if len(values) >= 2:
            q = statistics.quantiles(values, n=4)
            spread = q[2] - q[0]
        else:
            spread = 0.0
        return cls(statistics.median(values), unit, spread, higher_is_better, values)

    def __str__(self) -> str:
        spread = f" ± {self.spread / 2:.3g}" if self.spread else ""
        return f"{self.value:.4g}{spread} {self.unit}"
