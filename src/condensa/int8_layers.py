"""Which Linear layers of a model run the int8 kernel: the constrained search on measured speed.

Every layer moved to the per-token int8 kernel (:mod:`condensa.kernels`) makes the
model faster and a little less accurate, and layers differ in both. The model is
smoothed first (:mod:`condensa.smoothing`, unless ``alpha=None``); its layers are then
ordered by their kernel error on calibration inputs (:func:`condensa.kernels.
kernel_errors`); the search variable is the fraction of them that runs in int8, the
smallest errors first. :func:`condensa.search.search_sparsity` then finds the fraction
that maximizes the measured speed (decode tokens per second, against the reference
model side by side) while the metric stays within the constraint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from torch import nn

from condensa.errors import ConfigError
from condensa.inputs import Inputs
from condensa.kernels import kernel_errors, token_int8
from condensa.objectives import Decode
from condensa.optim.oneshot import calibration_inputs
from condensa.search import SearchResult, Trial, search_sparsity
from condensa.smoothing import smooth
from condensa.thinning import deployable

LOWER_IS_BETTER = ("perplexity", "loss")


def int8_count(order: Sequence[str], fraction: float) -> int:
    """How many layers run in int8 at ``fraction`` (rounded to the nearest layer)."""
    return round(fraction * len(order))


def kept_float(order: Sequence[str], fraction: float) -> list[str]:
    """Regexes for the layers left in float at ``fraction``: all but the first in ``order``."""
    return [re.escape(name) for name in order[int8_count(order, fraction) :]]


@dataclass(frozen=True)
class Int8Layers:
    """The search's result: the layer order, the reference metric and the search itself."""

    order: tuple[str, ...]
    """Linear layers, smallest kernel error first (the first ``n`` run in int8)."""
    errors: dict[str, float]
    reference_metric: float
    search: SearchResult
    runnable: nn.Module = field(repr=False)
    """The float model the trials converted (deployable, smoothed when asked)."""

    def keep(self, fraction: float) -> list[str]:
        """Names of the layers left in float at ``fraction`` (exact names, for ``token_int8``)."""
        return kept_float(self.order, fraction)

    @property
    def fraction(self) -> float | None:
        """The answer: the best feasible trial's fraction (None when nothing was feasible)."""
        best = self.search.best
        return None if best is None else float(cast(float, best.sparsity))

    def model(self) -> nn.Module:
        """The answer: the searched model with its chosen layers in int8.

        Raises:
            ConfigError: no trial met the constraint.

        """
        if self.fraction is None:
            raise ConfigError(f"no fraction met the constraint: {self.search.reason}")
        return token_int8(self.runnable, self.keep(self.fraction))


def search_int8_layers(
    model: nn.Module,
    trainer: Any,
    example_inputs: Inputs,
    *,
    reference: nn.Module | None = None,
    objective: Any = None,
    max_relative_drop: float = 0.05,
    metric: str = "perplexity",
    budget: int = 10,
    samples: int = 4,
    alpha: float | None = 0.5,
    seed: int | None = None,
    journal: str | Path | None = None,
    callback: Callable[[Trial], None] | None = None,
) -> Int8Layers:
    """The fraction of ``model``'s Linear layers to run in int8, by measured speed.

    Args:
        model: the model to deploy (plain, or compressed: its deployable form is used;
            weights GPTQ'd to int8 keep their grid in the kernel).
        trainer: gives ``evaluate(model) -> metrics`` and ``calibration_inputs``.
        example_inputs: token ids for the speed objective (and thinning).
        reference: the model the constraint and the speed are relative to (default:
            ``model``; pass the uncompressed model when ``model`` is compressed).
        objective: a speed objective with ``relative`` (default: ``Decode()``).
        max_relative_drop: the metric may be at most this fraction worse.
        metric: the trainer's metric constrained (perplexity and loss: lower is better).
        budget: trials (each: convert, evaluate, time against the reference).
        samples: calibration inputs for the kernel errors and the smoothing.
        alpha: smooth the model first (:func:`condensa.smoothing.smooth` with this
            ``alpha``; a decoder family Condensa knows); None: convert it as it is.
        seed: the search's seed (as for :func:`~condensa.search.search_sparsity`).
        journal: the search's journal file (a rerun resumes from it).
        callback: called with each trial.

    Raises:
        ConfigError: an objective without ``relative``, or a metric the trainer does
            not report.

    """
    objective = objective if objective is not None else Decode()
    if not callable(getattr(objective, "relative", None)):
        raise ConfigError(
            f"the objective {type(objective).__name__} cannot be measured against the "
            "reference side by side (it has no relative method); use Decode or Prefill"
        )
    runnable = deployable(model, example_inputs)
    base = deployable(reference if reference is not None else model, example_inputs)
    batches = calibration_inputs(trainer, samples)
    if alpha is not None:
        runnable = smooth(runnable, batches, alpha=alpha)
    reference_metrics = trainer.evaluate(base)
    if metric not in reference_metrics:
        raise ConfigError(
            f"the trainer reports {sorted(reference_metrics)}, not the metric {metric!r}"
        )
    errors = kernel_errors(runnable, batches)
    order = tuple(sorted(errors, key=lambda name: errors[name]))
    reference_metric = float(reference_metrics[metric])

    def evaluate(fraction: float) -> dict[str, float]:
        converted = token_int8(runnable, kept_float(order, fraction))
        value = float(trainer.evaluate(converted)[metric])
        speed = objective.relative(base, converted, example_inputs)
        se = speed.standard_error
        count = int8_count(order, fraction)
        out = {"accuracy": value, "objective": speed.value, "int8_layers": count}
        return {**out, "objective_se": se} if se is not None and math.isfinite(se) else out

    found = search_sparsity(
        evaluate,
        max_relative_drop=max_relative_drop,
        reference_accuracy=reference_metric,
        lower_is_better=metric in LOWER_IS_BETTER,
        budget=budget,
        bounds=(0.0, 0.999),  # the search needs high < 1; 0.999 rounds to every layer
        seed=seed,
        journal=journal,
        callback=callback,
    )
    return Int8Layers(order, errors, reference_metric, found, runnable)
