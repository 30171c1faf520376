"""The accuracy constraint a user states, reduced to one threshold and a direction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from condensa.errors import ConfigError


@dataclass(frozen=True)
class Constraint:
    """``accuracy >= threshold`` (or ``<=`` when lower is better, e.g. perplexity).

    Build it with :meth:`make` from the way users state it.

    Attributes:
        threshold: the accuracy bound.
        lower_is_better: True for loss/perplexity-like metrics (feasible = at most threshold).
        description: how the user stated it, for reports.

    """

    threshold: float
    lower_is_better: bool = False
    description: str = ""

    @classmethod
    def make(
        cls,
        *,
        accuracy_threshold: float | None = None,
        max_drop: float | None = None,
        max_relative_drop: float | None = None,
        reference_accuracy: float | None = None,
        lower_is_better: bool = False,
    ) -> Constraint:
        """Build the constraint from one of three forms.

        - ``accuracy_threshold=h``: accuracy at least ``h`` (at most, if lower is better);
        - ``max_drop=d`` with ``reference_accuracy=r``: at most ``d`` *absolute* units worse
          than ``r`` (``0.01`` = one point when accuracy is a fraction);
        - ``max_relative_drop=f`` with ``reference_accuracy=r``: at most the *fraction*
          ``f`` of ``r`` worse (``0.01`` = 1 % of the reference).

        Raises:
            ConfigError: none or several forms given, or a non-finite / negative value.

        """
        given = [
            n
            for n, v in (
                ("accuracy_threshold", accuracy_threshold),
                ("max_drop", max_drop),
                ("max_relative_drop", max_relative_drop),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ConfigError(
                "state the constraint once: accuracy_threshold=, max_drop= (absolute) or "
                f"max_relative_drop= (fraction of the reference); got {given or 'none'}"
            )
        sign = 1.0 if lower_is_better else -1.0
        if accuracy_threshold is not None:
            _finite("accuracy_threshold", accuracy_threshold)
            op = "<=" if lower_is_better else ">="
            return cls(
                float(accuracy_threshold), lower_is_better, f"accuracy {op} {accuracy_threshold:g}"
            )
        if reference_accuracy is None:
            raise ConfigError(f"{given[0]} needs reference_accuracy= (the uncompressed model's)")
        _finite("reference_accuracy", reference_accuracy)
        if max_drop is not None:
            _finite("max_drop", max_drop, non_negative=True)
            threshold = reference_accuracy + sign * max_drop
            text = f"at most {max_drop:g} worse than {reference_accuracy:g}"
        else:
            assert max_relative_drop is not None
            _finite("max_relative_drop", max_relative_drop, non_negative=True)
            threshold = reference_accuracy + sign * max_relative_drop * abs(reference_accuracy)
            text = f"at most {max_relative_drop:.2%} worse than {reference_accuracy:g}"
        return cls(float(threshold), lower_is_better, f"{text} (threshold {threshold:g})")

    def margin(self, accuracy: float) -> float:
        """Signed distance to the threshold; ``>= 0`` means feasible."""
        return self.threshold - accuracy if self.lower_is_better else accuracy - self.threshold

    def feasible(self, accuracy: float | None) -> bool:
        """Whether ``accuracy`` meets the constraint (False for a missing value)."""
        return accuracy is not None and math.isfinite(accuracy) and self.margin(accuracy) >= 0

    def to_dict(self) -> dict[str, object]:
        """Plain data (stored in journals to recognise the same problem)."""
        return {"threshold": self.threshold, "lower_is_better": self.lower_is_better}


def _finite(name: str, value: object, *, non_negative: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if non_negative and value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}")
