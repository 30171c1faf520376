"""The typed run record: what a `search` or `compress` run measured, as summary.json holds it.

The runner builds a :class:`RunReport`, writes it with :meth:`RunReport.to_dict`, and the
report, the demo and the commands read it back with :meth:`RunReport.from_dict`; no one
reads summary.json by string key. ``from_dict`` accepts summaries written before a field
existed (the field takes its default) and refuses malformed ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from condensa.errors import ConfigError
from condensa.objectives import Measurement
from condensa.plain import to_plain
from condensa.search import Trial


@dataclass(frozen=True)
class Speed:
    """A measurement as recorded: median value, spread (IQR) and unit."""

    value: float
    spread: float
    unit: str

    @classmethod
    def of(cls, measurement: Measurement) -> Speed:
        """The recorded form of a :class:`~condensa.objectives.Measurement`."""
        return cls(measurement.value, measurement.spread, measurement.unit)


@dataclass(frozen=True)
class LayerFacts:
    """One layer of the chosen model: its size, masked share and share thinning removed."""

    name: str
    kind: str
    numel: int
    sparsity: float
    removed: float | None


@dataclass(frozen=True)
class ModelFacts:
    """Metrics, sizes and MACs of one model (the baseline, or the chosen one)."""

    validation: float | None
    test: float | None
    sparsity: float
    nonzeros: int
    parameters: int
    dense_bytes: int
    ideal_bytes: int
    file_bytes: int
    macs: float | None
    deployable_parameters: int
    throughput: Speed | None = None


@dataclass(frozen=True)
class ChosenFacts(ModelFacts):
    """The chosen model's facts, with the ratios over the baseline and its deliverables."""

    target_sparsity: float | None = None
    speedup: float = math.nan
    file_ratio: float = math.nan
    ideal_ratio: float = math.nan
    macs_ratio: float = math.nan
    layers: tuple[LayerFacts, ...] = ()
    onnx: str | None = None


@dataclass(frozen=True)
class RunReport:
    """A finished run (``kind`` ``"search"`` or ``"compress"``); see the module docstring."""

    kind: str
    config: dict[str, Any]
    metric: str
    lower_is_better: bool
    validation_source: str
    baseline: ModelFacts
    chosen: ChosenFacts | None
    world_size: int = 1
    device: str = "cpu"
    threshold: float | None = None
    baseline_objective: Speed | None = None
    s_acc: float | None = None
    s_acc_std: float | None = None
    reason: str | None = None
    answer_note: str | None = None
    caution: str | None = None
    final_comparison: list[dict[str, Any]] | None = None
    stopped_early: bool | None = None
    trials: tuple[Trial, ...] = ()
    best_trial: int | None = None
    closest: Trial | None = None
    recovery: list[dict[str, Any]] | None = None
    figures: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    trials_wall_s: float | None = None

    @property
    def best(self) -> Trial | None:
        """The chosen trial of a search, if any."""
        found = [t for t in self.trials if t.index == self.best_trial]
        return found[0] if found else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the layout of summary.json); fields never set are left out."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if (
                f.name
                in (
                    "recovery",
                    "trials_wall_s",
                    "threshold",
                    "answer_note",
                    "caution",
                    "final_comparison",
                )  # fmt: skip
                and value is None
            ):
                continue  # absent in the runs that do not produce it
            out[f.name] = to_plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> RunReport:
        """The record of a summary.json's content.

        Raises:
            ConfigError: not a run summary (a missing or malformed required field).

        """
        try:
            values = dict(data)
            values["baseline"] = _facts(ModelFacts, values["baseline"])
            chosen = values.get("chosen")
            values["chosen"] = None if chosen is None else _facts(ChosenFacts, chosen)
            values["trials"] = tuple(Trial.from_dict(t) for t in values.get("trials") or ())
            closest = values.get("closest")
            values["closest"] = None if closest is None else Trial.from_dict(closest)
            objective = values.get("baseline_objective")
            values["baseline_objective"] = None if objective is None else Speed(**objective)
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in values.items() if k in known})
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"a missing or malformed field ({type(exc).__name__}: {exc})"
            ) from None


def _facts(cls: type[ModelFacts], data: Any) -> Any:
    values = dict(data)
    speed = values.get("throughput")
    values["throughput"] = None if speed is None else Speed(**speed)
    if cls is ChosenFacts:
        values["layers"] = tuple(LayerFacts(**r) for r in values.get("layers") or ())
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})
