"""The main job in one call: compress under an accuracy constraint, sparsity inferred.

``condensa.search_compression`` wires the pieces together: for each candidate
sparsity chosen by :func:`condensa.search.search_sparsity` it builds the scheme,
compresses with the chosen method (GMP by default, L-C, DC + fine-tuning or DC),
measures accuracy with the trainer and the objective on the deployable model, and
keeps the best feasible compressed model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from condensa.compress import unchanged
from condensa.contenders import final_comparison
from condensa.errors import ConfigError, user_code
from condensa.inputs import Inputs
from condensa.objectives import Measurement
from condensa.optim import Trainer
from condensa.optim.methods import DEFAULT_METHOD, build_method
from condensa.optim.result import Selector
from condensa.schemes import from_dict
from condensa.search import Constraint, SearchResult, search_sparsity
from condensa.search.loop import check_bounds
from condensa.trials import Objective, SchemeFactory, Trials, trial_extra


def scheme_factory(scheme: SchemeFactory | Mapping[str, Any]) -> SchemeFactory:
    """``sparsity -> Scheme`` from a callable, or from a spec whose ``"sparsity"`` is replaced.

    A spec may nest the sparsity (``{"type": "Compose", "schemes": [{"type": "Prune",
    "sparsity": 0}, ...]}``): every ``"sparsity"`` key of a pruning scheme is replaced.
    """
    if callable(scheme):
        return scheme
    if not isinstance(scheme, Mapping):
        raise ConfigError(f"scheme must be a callable sparsity -> Scheme or a spec, got {scheme!r}")

    def substitute(spec: Any, sparsity: float) -> Any:
        if isinstance(spec, Mapping):
            return {
                k: (sparsity if k == "sparsity" else substitute(v, sparsity))
                for k, v in spec.items()
            }
        if isinstance(spec, list):
            return [substitute(v, sparsity) for v in spec]
        return spec

    from_dict(substitute(scheme, 0.5))  # validate now, not at the first trial
    return lambda sparsity: from_dict(substitute(scheme, sparsity))


def grouped(model: nn.Module, make_scheme: SchemeFactory, example_inputs: Any) -> SchemeFactory:
    """``make_scheme`` whose channel schemes rank ``model``'s dependency groups.

    The model is traced once (on ``example_inputs``); schemes without channel pruning
    are returned unchanged.
    """
    from condensa.compress import uses_groups
    from condensa.schemes.groups import bind_groups
    from condensa.thinning import dependency_groups

    if not uses_groups(make_scheme(0.5)):
        return make_scheme
    groups = dependency_groups(model, example_inputs)
    return lambda sparsity: bind_groups(make_scheme(sparsity), groups)


def check_scheme(
    model: nn.Module, scheme: SchemeFactory | Mapping[str, Any], sparsities: Sequence[float]
) -> list[nn.Module]:
    """Refuse a scheme that cannot compress ``model`` before any training or search starts.

    Direct compression is applied to a copy at each sparsity (cheap: no training), so a
    selection pattern that matches nothing, an ``align`` larger than a layer or an
    unsupported module is reported at once instead of failing every trial.

    Returns:
        The compressed copies, one per distinct sparsity in the order given.

    Raises:
        ConfigError: from the scheme, naming what did not match.

    """
    from condensa.compress import compress

    make_scheme = scheme_factory(scheme)
    return [compress(model, make_scheme(s)) for s in dict.fromkeys(float(s) for s in sparsities)]


def _one_example(example_inputs: Inputs | None) -> Inputs:
    """``example_inputs``, which search_compression needs."""
    if example_inputs is None:
        raise ConfigError(
            "search_compression needs example_inputs= (one batch: a tensor, a tuple or a dict "
            "of keyword inputs)"
        )
    return example_inputs


def _method(method: str | Any, trainer: Trainer, options: Mapping[str, Any], metric: str) -> Any:
    if not isinstance(method, str):
        return method
    return build_method(method, trainer, options, metric=metric)


@dataclass
class CompressionSearch:
    """The outcome of :func:`search_compression`.

    Attributes:
        search: the :class:`~condensa.search.SearchResult` (trials, s_acc, plots data).
        model: the best feasible compressed model (masks attached), or None.
        baseline_accuracy: the uncompressed model's accuracy.
        baseline_objective: the objective measured on the uncompressed model.
        metric: the accuracy metric's name.

    Each trial's ``extra`` holds ``objective_value``/``objective_unit``/``objective_spread``
    (the measurement), ``sparsity_actual`` (zeros among the compressed weights),
    ``compression_ratio`` (dense float32 bytes / ideal compressed bytes) and, when
    trial models are saved, ``file`` and ``file_bytes``.

    """

    search: SearchResult
    model: nn.Module | None
    baseline_accuracy: float
    baseline_objective: Measurement
    metric: str


def search_compression(
    model: nn.Module,
    scheme: SchemeFactory | Mapping[str, Any],
    *,
    trainer: Trainer,
    objective: Objective,
    example_inputs: Inputs | None = None,
    method: str | Any = DEFAULT_METHOD,
    method_options: Mapping[str, Any] | None = None,
    max_drop: float | None = None,
    max_relative_drop: float | None = None,
    accuracy_threshold: float | None = None,
    metric: str = "accuracy",
    budget: int = 10,
    bounds: tuple[float, float] = (0.0, 0.99),
    seed: int | None = None,
    journal: str | Path | None = None,
    callback: Callable[[Any], None] | None = None,
    models: str | Path | None = None,
    save_options: Mapping[str, Any] | None = None,
    strategy: str | Any | None = None,
    pool: Any = None,
) -> CompressionSearch:
    """Infer the sparsity maximizing ``objective`` under an accuracy constraint, and compress.

    Each trial's model is evaluated once (the method's own validation is reused when
    it ran on ``trainer``). Speed objectives with a ``relative`` method (``Throughput``,
    ``Latency``) are measured as a speedup over ``model`` in interleaved rounds, which
    cancels machine drift; their spread and the validation metric's standard error
    (``"<metric>_se"`` from the trainer) are given to the search as noise. Direct
    compression is declared deterministic, and objectives with ``monotone = True``
    (``FileSize``, ``Macs``) let the search skip dominated sparsities. When the scheme
    leaves the model as it is at ``bounds[0]`` (pruning at sparsity 0), the uncompressed
    model's accuracy and objective are given to the search as a known point there: it
    costs no trial and anchors the surrogates (a noisy speedup cannot be extrapolated
    upward toward the dense model). A speed objective's answer is settled by timing
    the credible contenders side by side (:func:`condensa.contenders.final_comparison`;
    every contender's model is at hand with ``models=``, without it the answer's and
    those of the three best single readings, which stay in memory).

    Args:
        model: the trained, uncompressed model (not modified).
        scheme: ``sparsity -> Scheme`` (e.g. ``lambda s: FilterPrune(s, align=8)``) or a spec.
        trainer: trains (for fine-tuning / L-C) and evaluates; ``metric`` is read from
            its ``evaluate`` dict (lower is better for loss/perplexity-like names).
        objective: e.g. ``Throughput()``, ``FileSize()``, ``Macs()`` or any
            ``(model, example_inputs) -> Measurement | float``; its score is maximized.
        example_inputs: one batch for tracing, thinning and measuring: a tensor, a tuple
            of positional inputs or a dict of keyword arguments (token ids, masks).
        method: a name in :data:`condensa.optim.METHODS` (``"gmp"``, the default: gradual
            magnitude pruning, 2,000 steps; ``"lc"``, ``"finetune"``, ``"dc"``) or an object
            with ``.compress(model, scheme)``.
        method_options: keyword arguments of the method (steps, budget, distill, ...),
            over the registered defaults.
        max_drop: at most this much below the uncompressed model's measured accuracy
            (absolute units of the metric); or
        max_relative_drop: at most this fraction of it; or
        accuracy_threshold: an absolute bound.
        metric: accuracy metric name.
        budget: maximum number of compressions (search trials).
        bounds: the sparsity range searched.
        seed: the search seed.
        journal: trial journal for resuming (see :func:`condensa.search.search_sparsity`).
        callback: called with each trial.
        models: a directory where each trial's compressed model is saved
            (:func:`condensa.save`, named by its sparsity); a resumed search loads the
            chosen model from there instead of compressing again.
        save_options: ``zoo=``/``factory=``/``kwargs=`` recorded in the saved files.
        strategy: the search strategy (see :func:`condensa.search.search_sparsity`).
        pool: where trials run, e.g. ``RayPool(2)`` for two at once (see
            :func:`condensa.search.search_sparsity`); trial models are then found
            again from ``models`` (or compressed again).

    Returns:
        A :class:`CompressionSearch`.

    Example:
        >>> outcome = condensa.search_compression(
        ...     model, lambda s: schemes.FilterPrune(s), trainer=trainer,
        ...     objective=condensa.objectives.Throughput(), example_inputs=x,
        ...     max_drop=0.01, method="finetune")  # doctest: +SKIP

    """
    check_bounds(bounds)
    example_inputs = _one_example(example_inputs)
    make_scheme = grouped(model, scheme_factory(scheme), example_inputs)
    # the copy compressed at bounds[0]: the uncompressed model is a known point there
    dense_at_low = unchanged(model, check_scheme(model, make_scheme, bounds)[0])
    compressor = _method(method, trainer, dict(method_options or {}), metric)
    lower = not Selector(metric).higher_is_better
    baseline_metrics = user_code(
        lambda: trainer.evaluate(model), "evaluating the uncompressed model"
    )
    baseline = float(baseline_metrics[metric])
    constraint = Constraint.make(
        accuracy_threshold=accuracy_threshold,
        max_drop=max_drop,
        max_relative_drop=max_relative_drop,
        reference_accuracy=None if accuracy_threshold is not None else baseline,
        lower_is_better=lower,
    )
    folder = Path(models) if models is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    trials = Trials(
        model, make_scheme, compressor, trainer, objective, example_inputs, metric,
        constraint, folder, dict(save_options or {}),
    )  # fmt: skip
    baseline_objective = trials.baseline_objective()  # measured before any trial runs
    known = []  # the uncompressed model, where the scheme leaves it as it is
    if dense_at_low:
        extra = trial_extra(model, baseline_objective, baseline_metrics, metric)
        known.append({"sparsity": bounds[0], "accuracy": baseline,
                      "objective": baseline_objective.score, **extra})  # fmt: skip
    result = search_sparsity(
        trials,
        constraint=constraint,
        budget=budget,
        bounds=bounds,
        seed=seed,
        journal=journal,
        callback=callback,
        strategy=strategy,
        deterministic=bool(getattr(compressor, "deterministic", False)),
        monotone=bool(getattr(objective, "monotone", False)),
        pool=pool,
        known=known,
    )
    chosen = trials.chosen(result)  # kept, saved, or compressed again
    if trials.relative and chosen is not None:  # noisy speeds: time the contenders together
        answer = result.best.sparsity  # type: ignore[union-attr]
        result = final_comparison(
            result, objective, model,
            lambda s: chosen if s == answer else trials.model_at(s), example_inputs,
        )  # fmt: skip
        chosen = trials.chosen(result) if result.best.sparsity != answer else chosen  # type: ignore[union-attr]
    return CompressionSearch(result, chosen, baseline, baseline_objective, metric)
