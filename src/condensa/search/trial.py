"""Trials — one evaluation each — and turning what ``evaluate`` returns into one."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from condensa.errors import ConfigError
from condensa.objectives import Measurement
from condensa.plain import to_plain
from condensa.search.constraint import Constraint

Point = float | tuple[float, ...]


@dataclass(frozen=True)
class Trial:
    """One call of ``evaluate``.

    Attributes:
        index: 0-based position in the search; negative for a *known* point, an
            observation given before the search (e.g. the uncompressed model) that the
            search learns from but never evaluates nor returns.
        sparsity: the point evaluated (a float, or a tuple for multi-dimensional search).
        accuracy, objective: what ``evaluate`` returned (None when the trial failed).
        feasible: whether ``accuracy`` meets the constraint.
        stage: ``"initial"``, ``"level-set"``, ``"objective"`` or ``"bo"``.
        wall_s: seconds spent in ``evaluate``; ``overhead_s``: seconds the search spent
            choosing this point.
        extra: other metrics returned by ``evaluate``.
        error: the error message when the trial failed.
        seed: the search seed.

    """

    index: int
    sparsity: Point
    accuracy: float | None
    objective: float | None
    feasible: bool
    stage: str = ""
    wall_s: float = 0.0
    overhead_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seed: int | None = None

    @property
    def measurement(self) -> Measurement | None:
        """The objective as measured (value, unit, spread, direction); None if failed."""
        return Measurement.from_record(self.extra, self.objective)

    @property
    def known(self) -> bool:
        """True for an observation given to the search, not evaluated by it."""
        return self.index < 0

    @property
    def failed(self) -> bool:
        """True when ``evaluate`` raised or returned something unusable."""
        return self.error is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the journal."""
        out = asdict(self)
        out["sparsity"] = list(self.sparsity) if isinstance(self.sparsity, tuple) else self.sparsity
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Trial:
        """Inverse of :meth:`to_dict`, checking every field's type (journals are input).

        Raises:
            ValueError: not a mapping, a missing field, or a field of the wrong type.

        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a trial must be a JSON object, got {str(data)[:60]!r}")
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("index", "sparsity", "accuracy", "objective", "feasible"):
            if name not in values:
                raise ValueError(f"a trial needs {name!r}")
        sparsity = values["sparsity"]
        if isinstance(sparsity, list) and sparsity and all(_number(v) for v in sparsity):
            values["sparsity"] = tuple(float(v) for v in sparsity)
        elif not _number(sparsity) and not (values.get("error") and sparsity is None):
            raise ValueError(f"trial sparsity must be a number or a list of them: {sparsity!r}")
        checks = {
            "index": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "accuracy": lambda v: v is None or _number(v),
            "objective": lambda v: v is None or _number(v),
            "feasible": lambda v: isinstance(v, bool),
            "stage": lambda v: isinstance(v, str),
            "wall_s": _number,
            "overhead_s": _number,
            "extra": lambda v: isinstance(v, dict),
            "error": lambda v: v is None or isinstance(v, str),
            "seed": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        }
        for name, valid in checks.items():
            if name in values and not valid(values[name]):
                raise ValueError(f"trial field {name!r} has a wrong value {values[name]!r}")
        if values.get("error") is None and (
            values["accuracy"] is None or values["objective"] is None
        ):
            raise ValueError("a trial that did not fail needs an accuracy and an objective")
        return cls(**values)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_outcome(value: object) -> tuple[float, float, dict[str, Any]]:
    """``(accuracy, objective, extra)`` from what ``evaluate`` returned.

    Accepted: a pair ``(accuracy, objective)``, a triple with a dict of extra metrics,
    or a mapping with ``"accuracy"`` and ``"objective"`` keys (other keys are extras).

    Raises:
        ValueError: anything else, or non-finite numbers (the trial is then recorded
            as failed).

    """
    extra: dict[str, Any] = {}
    if isinstance(value, Mapping):
        if "accuracy" not in value or "objective" not in value:
            raise ValueError(f"evaluate returned a mapping without accuracy/objective: {value!r}")
        accuracy, objective = value["accuracy"], value["objective"]
        extra = {k: v for k, v in value.items() if k not in ("accuracy", "objective")}
    elif (
        isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) in (2, 3)
    ):
        accuracy, objective = value[0], value[1]
        if len(value) == 3:
            if not isinstance(value[2], Mapping):
                raise ValueError(
                    f"the third item returned by evaluate must be a dict, got {value[2]!r}"
                )
            extra = dict(value[2])
    else:
        raise ValueError(
            f"evaluate must return (accuracy, objective), got {value!r} "
            f"of type {type(value).__name__}"
        )
    numbers = []
    for name, number in (("accuracy", accuracy), ("objective", objective)):
        try:
            as_float = float(number)
        except (TypeError, ValueError):
            raise ValueError(f"evaluate returned a non-numeric {name}: {number!r}") from None
        if not math.isfinite(as_float):
            raise ValueError(f"evaluate returned a non-finite {name}: {number!r}")
        numbers.append(as_float)
    return numbers[0], numbers[1], to_plain(extra)


def known_trials(
    known: Sequence[Mapping[str, Any]],
    pairs: list[tuple[float, float]],
    constraint: Constraint,
    seed: int,
) -> tuple[Trial, ...]:
    """The ``known`` observations as trials with indices -1, -2, ...

    Raises:
        ConfigError: not a list of mappings, a sparsity outside the bounds, or an
            unusable accuracy/objective.

    """
    if isinstance(known, (Mapping, str, bytes)) or not isinstance(known, Sequence):
        raise ConfigError(
            f"known must be a list of mappings (sparsity, accuracy, objective), got {known!r}"
        )
    out = []
    for i, item in enumerate(known):
        if not isinstance(item, Mapping) or "sparsity" not in item:
            raise ConfigError(f"known[{i}] must be a mapping with a sparsity, got {item!r}")
        point = item["sparsity"]
        values = tuple(point) if isinstance(point, Sequence) else (point,)
        if len(values) != len(pairs) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high
            for v, (low, high) in zip(values, pairs, strict=False)
        ):
            raise ConfigError(f"known[{i}] sparsity {point!r} must lie inside the bounds {pairs}")
        try:
            accuracy, objective, extra = parse_outcome(
                {k: v for k, v in item.items() if k != "sparsity"}
            )
        except ValueError as exc:
            raise ConfigError(f"known[{i}]: {exc}") from None
        at: Point = float(values[0]) if len(values) == 1 else tuple(float(v) for v in values)
        out.append(Trial(-1 - i, at, accuracy, objective, constraint.feasible(accuracy),
                         "known", extra=extra, seed=seed))  # fmt: skip
    return tuple(out)
