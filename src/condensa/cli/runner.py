"""Running a config: the baseline, the search (or one compression), the best model, the summary."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from condensa.api import check_scheme, grouped, scheme_factory, search_compression
from condensa.cli import build
from condensa.cli.chosen import finish, save_options
from condensa.cli.config import constraint_kwargs
from condensa.cli.ranks import claimed, trial_pool
from condensa.cli.record import RunReport, Speed
from condensa.cli.rundir import RunDir
from condensa.distributed import World
from condensa.errors import CondensaError, ConfigError, user_code
from condensa.io import load, save
from condensa.objectives import Measurement
from condensa.optim.result import Selector, diagnostics
from condensa.search import Trial


def _environment(config: Mapping[str, Any]) -> torch.device:
    torch.set_num_threads(config["threads"])
    torch.manual_seed(config["seed"])
    try:
        device = torch.device(config["device"] or "cpu")
    except RuntimeError:
        raise ConfigError(
            f"device = {config['device']!r} is not a device; valid: cpu, cuda, cuda:N"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device = {config['device']!r} is not supported; valid: cpu, cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device = {config['device']!r} but no CUDA device is available")
    world = World.current()
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)  # one GPU per process under torchrun
    return device


def initial_model(config: Mapping[str, Any], setup: build.Setup, run: RunDir) -> nn.Module:
    """A fresh instance of the architecture, with the checkpoint loaded when one is given.

    Called before the run directory is touched, so a bad model name, factory or
    checkpoint leaves nothing behind.
    """
    model = setup.make_model()
    checkpoint = config["model"]["checkpoint"]
    if checkpoint:
        model = build.load_checkpoint(model, checkpoint)
    return model


def baseline(
    config: Mapping[str, Any], setup: build.Setup, run: RunDir, console: Console, model: nn.Module
) -> nn.Module:
    """The uncompressed model: the run's saved baseline, the checkpoint, or trained now."""
    if run.baseline.is_file():
        console.print(f"baseline: reusing {run.baseline}")
        try:
            return load(run.baseline, setup.make_model())
        except CondensaError as exc:
            raise CondensaError(
                f"the run's baseline {str(run.baseline)!r} cannot be read ({exc}); delete that "
                "file (the baseline is trained again) or run again with --force"
            ) from None
    if config["model"]["checkpoint"]:
        console.print(f"baseline: loaded {config['model']['checkpoint']}")
    elif config["train"]["epochs"] == 0:
        console.print(f"baseline: {config['model']['name']} as given (train.epochs = 0)")
    else:
        steps = max(1, round(config["train"]["epochs"] * setup.steps_per_epoch))
        start = time.perf_counter()
        user_code(lambda: setup.trainer.train(model, steps), "training the baseline")
        console.print(
            f"baseline: trained {config['model']['name']} for {config['train']['epochs']} epochs "
            f"({steps} steps, {time.perf_counter() - start:.1f}s)"
        )
    save(model, run.baseline, **save_options(setup))
    run.track(run.baseline)
    return model


def _progress(console: Console, run: RunDir, budget: int, metric: str) -> Any:
    state: dict[str, Any] = {"best": None}

    def callback(trial: Trial) -> None:
        if isinstance(trial.extra.get("file"), str):
            run.track(run.trials / Path(trial.extra["file"]).name)
        if trial.failed:
            console.print(f"trial {trial.index + 1}/{budget}: failed: {trial.error}")
            return
        assert trial.objective is not None and trial.accuracy is not None
        if trial.feasible and (state["best"] is None or trial.objective > state["best"].objective):
            state["best"] = trial
        measured = trial.measurement
        assert measured is not None
        best = state["best"]
        console.print(
            f"trial {trial.index + 1}/{budget} ({trial.stage}): sparsity {trial.sparsity:.4f}  "
            f"{metric} {trial.accuracy:.4f} {'ok' if trial.feasible else 'misses the constraint'}  "
            f"objective {measured.value:.4g} {measured.unit}  "
            f"({trial.wall_s:.1f}s) | best: "
            + (f"s={best.sparsity:.4f}" if best is not None else "none feasible yet"),
            markup=False,
        )

    return callback


@dataclass
class _Prepared:
    """A run ready to compress: its directory, data and trainers, method, baseline model."""

    run: RunDir
    setup: build.Setup
    metric: str
    method: Any
    dense: nn.Module
    device: torch.device


@contextlib.contextmanager
def _prepare(
    config: Mapping[str, Any], output: Path, console: Console, *, force: bool, verbose: bool
) -> Iterator[_Prepared]:
    """Validate everything, then claim (and lock) the run directory and get the baseline.

    Data, model, checkpoint, metric, method options and the scheme (resolved against
    the model at both search bounds) are checked before the directory is touched, so a
    mistake leaves nothing behind. The directory stays locked until the block ends.
    """
    device = _environment(config)
    run = RunDir(output)
    setup = build.setup(config, progress=verbose)
    metric = config["constraint"]["metric"]
    if metric not in setup.metrics:
        raise ConfigError(
            f"constraint.metric = {metric!r} is not measured on data {config['data']['name']!r}; "
            f"valid: {', '.join(setup.metrics)}"
        )
    method = build.method(config, setup.trainer, metric)
    model = initial_model(config, setup, run)
    bounds = config["search"]["bounds"]
    check_scheme(model, config["scheme"], (*bounds, config["search"]["sparsity"]))
    with claimed(run, config, force=force) as (run, resumed):
        if resumed:
            console.print(f"resuming the run in {run.path}", markup=False)
        dense = baseline(config, setup, run, console, model).to(device)
        yield _Prepared(run, setup, metric, method, dense, device)


def _head(kind: str, config: Mapping[str, Any], ready: _Prepared) -> dict[str, Any]:
    """The :class:`RunReport` fields every run sets first."""
    return {
        "kind": kind,
        "config": dict(config),
        "metric": ready.metric,
        "lower_is_better": not Selector(ready.metric).higher_is_better,
        "validation_source": ready.setup.validation_source,
        "world_size": World.current().size,
        "device": str(ready.device),
    }


def run_search(
    config: Mapping[str, Any], output: Path, console: Console, *, force: bool, verbose: bool = False
) -> RunReport:
    """``condensa search``: the constrained sparsity search, resumable, into ``output``."""
    start = time.perf_counter()
    objective = build.objective(config)
    strategy = build.strategy(config)
    with (
        trial_pool(config) as pool,  # Ray joined (or refused) before any training
        _prepare(config, output, console, force=force, verbose=verbose) as ready,
    ):
        return _search(config, objective, strategy, ready, console, start, pool)


def _search(
    config: Mapping[str, Any],
    objective: Any,
    strategy: Any,
    ready: _Prepared,
    console: Console,
    start: float,
    pool: Any,
) -> RunReport:
    run, setup, metric = ready.run, ready.setup, ready.metric
    budget = config["search"]["budget"]
    outcome = search_compression(
        ready.dense,
        config["scheme"],
        trainer=setup.trainer,
        objective=objective,
        example_inputs=setup.example_inputs.to(ready.device),
        method=ready.method,
        metric=metric,
        budget=budget,
        bounds=tuple(config["search"]["bounds"]),
        seed=config["seed"],
        journal=run.journal,
        callback=_progress(console, run, budget, metric),
        models=run.trials,
        save_options=save_options(setup),
        strategy=strategy,
        pool=pool,
        **constraint_kwargs(config),  # type: ignore[arg-type]
    )
    result = outcome.search
    chosen_sparsity = result.best.sparsity if result.best is not None else None
    assert chosen_sparsity is None or isinstance(chosen_sparsity, float)
    base, chosen = finish(config, setup, run, console, ready.dense, outcome.model, chosen_sparsity)
    report = RunReport(
        **_head("search", config, ready),
        baseline=base,
        chosen=chosen,
        threshold=result.constraint.threshold,
        baseline_objective=Speed.of(outcome.baseline_objective),
        s_acc=result.s_acc,
        s_acc_std=result.s_acc_std,
        reason=result.reason,
        answer_note=result.extra.get("answer_note"),
        caution=result.extra.get("caution"),
        final_comparison=result.extra.get("final_comparison"),
        stopped_early=result.stopped_early,
        trials=tuple(result.trials),
        best_trial=result.best.index if result.best is not None else None,
        closest=result.closest,
        figures=_plots(result, run, console, outcome.baseline_objective),
        wall_s=time.perf_counter() - start,
        trials_wall_s=sum(t.wall_s for t in result.trials),
    )
    _write_summary(run, report)
    return report


def _write_summary(run: RunDir, report: RunReport) -> None:
    """summary.json, then the reports from it, while the run still holds the directory."""
    from condensa.cli.report import write_report

    run.write_summary(_finite(report.to_dict()))
    run.track(run.summary)
    write_report(run)


def run_compress(
    config: Mapping[str, Any],
    output: Path,
    sparsity: float,
    console: Console,
    *,
    force: bool,
    verbose: bool = False,
) -> RunReport:
    """``condensa compress``: one compression at ``sparsity`` into ``output``."""
    start = time.perf_counter()
    with _prepare(config, output, console, force=force, verbose=verbose) as ready:
        make_scheme = grouped(
            ready.dense, scheme_factory(config["scheme"]), ready.setup.example_inputs
        )
        result = ready.method.compress(ready.dense, make_scheme(sparsity))
        setup, run = ready.setup, ready.run
        base, chosen = finish(config, setup, run, console, ready.dense, result.model, sparsity)
        report = RunReport(
            **_head("compress", config, ready),
            baseline=base,
            chosen=chosen,
            recovery=diagnostics(result.history, ready.metric),
            wall_s=time.perf_counter() - start,
        )
        _write_summary(ready.run, report)
        return report


def _plots(result: Any, run: RunDir, console: Console, objective: Measurement) -> dict[str, str]:
    try:
        from condensa.search import plot_search
    except ImportError:  # pragma: no cover
        return {}
    run.figures.mkdir(exist_ok=True)
    try:
        run.track(run.figures / "search.png")
        plot_search(
            result,
            run.figures / "search.png",
            title="Sparsity search",
            objective_label=f"objective ({objective.unit})" if objective.unit else "objective",
            higher_is_better=objective.higher_is_better,
        )
    except CondensaError as exc:
        console.print(f"search plot skipped: {exc}")
        return {}
    return {"search": "figures/search.png"}


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
