"""A measured value with its unit and spread."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


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

    @property
    def standard_error(self) -> float | None:
        """Standard error of the median (1.2533 σ/√n) from the samples; 0 for an exact count.

        None when it cannot be told (one noisy sample).
        """
        if len(self.samples) >= 2:
            return 1.2533 * statistics.stdev(self.samples) / math.sqrt(len(self.samples))
        return 0.0 if self.spread == 0 else None

    def record(self) -> dict[str, Any]:
        """The plain-data fields a trial's ``extra`` keeps (inverse: :meth:`from_record`)."""
        out: dict[str, Any] = {
            "objective_value": self.value,
            "objective_unit": self.unit,
            "objective_spread": self.spread,
        }
        se = self.standard_error
        if se is not None:
            out["objective_se"] = se
        return out

    @classmethod
    def from_record(cls, extra: Mapping[str, Any], score: float | None) -> Measurement | None:
        """The measurement a trial recorded in ``extra``; None for a failed trial.

        ``score`` is the trial's objective (what the search maximized): its sign gives
        the direction. Records without the fields (a plain-float objective) give
        ``score`` itself, unitless.
        """
        if score is None:
            return None
        value = extra.get("objective_value", score)
        if not isinstance(value, (int, float)):
            return None
        unit = extra.get("objective_unit", "")
        spread = extra.get("objective_spread", 0.0)
        higher = score == value if value != 0 else True
        return cls(
            float(value),
            unit if isinstance(unit, str) else "",
            float(spread) if isinstance(spread, (int, float)) else 0.0,
            higher,
        )

    def __str__(self) -> str:
        spread = f" ± {self.spread / 2:.3g}" if self.spread else ""
        return f"{self.value:.4g}{spread} {self.unit}"
