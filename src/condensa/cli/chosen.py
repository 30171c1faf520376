"""The chosen model's deliverables: saved, exported, measured beside the baseline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from condensa.api import scheme_factory
from condensa.atomic import write_text
from condensa.cli import build
from condensa.cli.record import ChosenFacts, LayerFacts, ModelFacts, Speed
from condensa.cli.rundir import RunDir
from condensa.distributed import measured_on_main
from condensa.errors import CondensaError, ConfigError
from condensa.io import save
from condensa.objectives import Macs, compare_throughput
from condensa.schemes import to_toml
from condensa.stats import stats
from condensa.thinning import deployable


def save_options(setup: build.Setup) -> dict[str, Any]:
    """How to rebuild the architecture on load (zoo name or factory, and its arguments)."""
    arch = setup.architecture
    key = "zoo" if "zoo" in arch else "factory"
    return {key: arch[key], "kwargs": arch["kwargs"]}


def _evaluate_metric(trainer: Any, model: nn.Module, metric: str) -> float:
    values = trainer.evaluate(model)
    if metric not in values:
        raise ConfigError(
            f"constraint.metric {metric!r} is not measured; valid: {', '.join(values)}"
        )
    return float(values[metric])


def _model_facts(
    model: nn.Module, runnable: nn.Module, setup: build.Setup, metric: str, path: Path
) -> dict[str, Any]:
    """Metrics, sizes and MACs of ``model`` (the fields of :class:`ModelFacts`)."""
    st = stats(model)
    example = setup.example_inputs
    return {
        "validation": _evaluate_metric(setup.trainer, model, metric),
        "test": _evaluate_metric(setup.tester, model, metric),
        "sparsity": st.sparsity,
        "nonzeros": st.nonzeros,
        "parameters": st.numel,
        "dense_bytes": st.dense_bytes,
        "ideal_bytes": st.compressed_bytes,
        "file_bytes": path.stat().st_size,
        "macs": Macs("dense")(runnable, example).value / example.shape[0],
        "deployable_parameters": sum(p.numel() for p in runnable.parameters()),
    }


def finish(
    config: Mapping[str, Any],
    setup: build.Setup,
    run: RunDir,
    console: Console,
    dense: nn.Module,
    chosen: nn.Module | None,
    sparsity: float | None,
) -> tuple[ModelFacts, ChosenFacts | None]:
    """Save the chosen model (compressed, ONNX of the thinned form) and measure both models."""
    metric = config["constraint"]["metric"]
    dense_runnable = deployable(dense, setup.example_inputs)
    base = _model_facts(dense, dense_runnable, setup, metric, run.baseline)
    if chosen is None:
        return ModelFacts(**base), None
    run.best.mkdir(exist_ok=True)
    path = save(chosen, run.best / "model.condensa", **save_options(setup))
    scheme = scheme_factory(config["scheme"])(float(sparsity or 0.0))
    write_text(run.best / "scheme.toml", to_toml(scheme))
    run.track(path, run.best / "scheme.toml")
    runnable = deployable(chosen, setup.example_inputs)
    described = _model_facts(chosen, runnable, setup, metric, path)
    spec = config["objective"]
    reference, candidate = measured_on_main(compare_throughput)(  # rank 0's timing, shared
        dense,
        chosen,
        setup.example_inputs,
        batch_size=spec["batch_size"],
        threads=spec["threads"] or None,
    )
    facts = ChosenFacts(
        **described,
        throughput=Speed.of(candidate),
        target_sparsity=sparsity,
        speedup=candidate.value / reference.value,
        file_ratio=base["file_bytes"] / described["file_bytes"],
        ideal_ratio=base["dense_bytes"] / max(1, described["ideal_bytes"]),
        macs_ratio=base["macs"] / max(1.0, described["macs"]),
        layers=_layers(chosen, runnable),
        onnx=_onnx(chosen, setup, run, console),
    )
    return ModelFacts(**base, throughput=Speed.of(reference)), facts


def _layers(chosen: nn.Module, runnable: nn.Module) -> tuple[LayerFacts, ...]:
    """Per layer: size, sparsity, and the share thinning removed from the deployable form."""
    kept = {
        name: sum(p.numel() for p in module.parameters(recurse=False))
        for name, module in runnable.named_modules()
    }
    return tuple(
        LayerFacts(
            r.name,
            r.kind,
            r.numel,
            1 - r.nonzeros / r.numel,
            1 - kept[r.name] / r.numel if r.name in kept else None,
        )
        for r in stats(chosen).layers
        if r.numel
    )


def _onnx(chosen: nn.Module, setup: build.Setup, run: RunDir, console: Console) -> str | None:
    """best/model.onnx of the thinned model, or None (and a message) when it cannot export."""
    from condensa.quantized import is_decoder_lm

    if is_decoder_lm(chosen):  # the TorchScript exporter has no grouped-query attention
        console.print("ONNX export skipped: export decoder language models with optimum")
        return None
    try:
        from condensa.export import export_onnx

        export_onnx(chosen, setup.example_inputs, run.best / "model.onnx")
    except CondensaError as exc:
        console.print(f"ONNX export skipped: {exc}")
        return None
    run.track(run.best / "model.onnx")
    return "best/model.onnx"
