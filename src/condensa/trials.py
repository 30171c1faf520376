"""One search trial per call: compress at a sparsity, evaluate, measure, save, keep if feasible.

:func:`condensa.search_compression` hands :class:`Trials` to the search as its
``evaluate``; it also finds the model of the answer again (kept in memory, saved, or
compressed again when a saved one is missing or unreadable).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from torch import nn

from condensa.distributed import measured_on_main
from condensa.errors import CondensaError
from condensa.inputs import Inputs
from condensa.io import load, save
from condensa.objectives import Measurement
from condensa.optim import Trainer
from condensa.optim.result import diagnostics
from condensa.schemes import Scheme
from condensa.search import Constraint, SearchResult
from condensa.stats import stats

SchemeFactory = Callable[[float], Scheme]
Objective = Callable[[nn.Module, Inputs], "Measurement | float"]
KEEP_MODELS = 3
"""Feasible trial models kept in memory (best observed objective first) for the answer."""


def trial_path(folder: Path, sparsity: Any) -> Path:
    """Where the model compressed at ``sparsity`` is saved inside ``folder``."""
    return folder / f"trial-s{float(sparsity):.6f}.condensa"


def measure(
    objective: Objective,
    model: nn.Module,
    example_inputs: Inputs,
    reference: nn.Module | None = None,
) -> Measurement:
    """``objective`` of ``model`` (relative to ``reference`` when given), taken on rank 0.

    Under a data-parallel launch the other ranks wait and receive rank 0's reading, so
    speed measurements never run side by side on one machine.
    """

    def take() -> Measurement:
        if reference is not None:
            relative = objective.relative  # type: ignore[attr-defined]
            return cast(Measurement, relative(reference, model, example_inputs))
        value = objective(model, example_inputs)
        return value if isinstance(value, Measurement) else Measurement(float(value), "")

    return measured_on_main(take)()


def trial_extra(
    model: nn.Module, measured: Measurement, metrics: Mapping[str, float], metric: str
) -> dict[str, Any]:
    """What a trial records beside accuracy and objective, noise estimates included."""
    st = stats(model)
    extra: dict[str, Any] = {
        **measured.record(),
        "sparsity_actual": st.sparsity,
        "compression_ratio": st.compression_ratio,
    }
    if isinstance(metrics.get(f"{metric}_se"), (int, float)):
        extra["accuracy_se"] = float(metrics[f"{metric}_se"])
    return extra


@dataclass
class Trials:
    """One trial per call: compress at a sparsity, evaluate, measure, save, keep if feasible.

    The best few feasible models stay in memory (``KEEP_MODELS``) so the answer needs
    no second compression; :meth:`chosen` finds the answer's model.
    """

    model: nn.Module
    make_scheme: SchemeFactory
    compressor: Any
    trainer: Trainer
    objective: Objective
    example_inputs: Inputs
    metric: str
    constraint: Constraint
    folder: Path | None
    save_options: dict[str, Any]
    kept: dict[float, tuple[float, nn.Module]] = field(default_factory=dict)

    @property
    def relative(self) -> bool:
        """Whether the objective measures a speedup over the uncompressed model."""
        return callable(getattr(self.objective, "relative", None))

    def baseline_objective(self) -> Measurement:
        """The objective of the uncompressed model (1x for a relative objective)."""
        if self.relative:
            return Measurement(1.0, "x")
        return measure(self.objective, self.model, self.example_inputs)

    def __call__(self, sparsity: float) -> dict[str, Any]:
        """The trial record at ``sparsity``: accuracy, objective score, and extras."""
        result = self.compressor.compress(self.model, self.make_scheme(float(sparsity)))
        reuse = getattr(self.compressor, "trainer", None) is self.trainer
        metrics = result.metrics if reuse and self.metric in result.metrics else {}
        metrics = metrics or self.trainer.evaluate(result.model)
        accuracy = float(metrics[self.metric])
        reference = self.model if self.relative else None
        measured = measure(self.objective, result.model, self.example_inputs, reference)
        extra = trial_extra(result.model, measured, metrics, self.metric)
        extra["recovery"] = diagnostics(result.history, self.metric)
        if self.folder is not None:
            path = save(result.model, trial_path(self.folder, sparsity), **self.save_options)
            extra.update(file=path.name, file_bytes=path.stat().st_size)
        if self.constraint.feasible(accuracy):
            self.kept[float(sparsity)] = (measured.score, result.model)
            ranked = sorted(self.kept, key=lambda k: self.kept[k][0], reverse=True)
            for dropped in ranked[KEEP_MODELS:]:
                del self.kept[dropped]
        return {"accuracy": accuracy, "objective": measured.score, **extra}

    def model_at(self, sparsity: float) -> nn.Module | None:
        """The trial model at ``sparsity`` if kept in memory or saved (and readable), else None.

        A saved trial model that cannot be read (a damaged file) is reported and treated
        as missing: the answer's model is then compressed again.
        """
        if sparsity in self.kept:
            return self.kept[sparsity][1]
        path = None if self.folder is None else trial_path(self.folder, sparsity)
        if path is None or not path.is_file():
            return None
        try:
            return load(path, self.model)
        except CondensaError as exc:
            warnings.warn(
                f"the trial model {str(path)!r} cannot be read ({exc}); it is compressed again",
                stacklevel=2,
            )
            return None

    def chosen(self, result: SearchResult) -> nn.Module | None:
        """The model of the search's answer: kept, saved, or compressed again."""
        if result.best is None:
            return None
        sparsity = result.best.sparsity
        assert isinstance(sparsity, float)  # search_compression searches one sparsity
        model = self.model_at(sparsity)
        if model is not None:
            return model
        # resumed from a journal, or a model no longer kept: recompute
        return cast(
            nn.Module, self.compressor.compress(self.model, self.make_scheme(sparsity)).model
        )
