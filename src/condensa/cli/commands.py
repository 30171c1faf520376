"""The subcommands' bodies: turn parsed arguments into runs, reports and tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from condensa.cli.config import parse_assignment, read_config, resolve
from condensa.errors import ConfigError

FLAG_KEYS = {
    "output": ("output",),
    "seed": ("seed",),
    "threads": ("threads",),
    "device": ("device",),
    "method": ("method", "name"),
    "max_drop": ("constraint", "max_drop"),
    "budget": ("search", "budget"),
    "objective": ("objective", "name"),
    "sparsity": ("search", "sparsity"),
}


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config file, then flags, then ``--set`` assignments, validated."""
    layers: list[tuple[str, dict[str, Any]]] = [(args.config, read_config(args.config))]
    flags: dict[str, Any] = {}
    for name, path in FLAG_KEYS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        target = flags
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    if "output" not in flags and "output" not in layers[0][1]:
        flags["output"] = str(Path("runs") / Path(args.config).stem)
    layers.append(("command-line flags", flags))
    layers += [(f"--set {a}", parse_assignment(a)) for a in args.set]
    return resolve(layers)


def _finish_run(summary: dict[str, Any], output: Path, console: Console) -> None:
    from condensa.cli.report import write_report

    md, page = write_report(output)
    console.quiet = False  # --quiet silences progress, never the result
    chosen = summary.get("chosen")
    metric = summary["metric"]
    if chosen:
        console.print(
            f"[bold]chosen sparsity {chosen['target_sparsity']:.4f}[/bold]: {metric} "
            f"{chosen['validation']:.4f} (baseline {summary['baseline']['validation']:.4f}), "
            f"test {chosen['test']:.4f}; file {chosen['file_ratio']:.2f}x smaller; "
            f"MACs {chosen['macs_ratio']:.2f}x fewer; measured speedup {chosen['speedup']:.2f}x"
        )
    else:
        closest = summary.get("closest") or {}
        console.print(
            "[bold]no feasible compression found[/bold]; closest trial: sparsity "
            f"{closest.get('sparsity', float('nan')):.4f}, {metric} {closest.get('accuracy')}"
        )
    console.print(f"report: {page}  (and {md.name})")


def search(args: argparse.Namespace, console: Console) -> None:
    """``condensa search CONFIG``."""
    from condensa.cli.runner import run_search

    config = run_config(args)
    output = Path(config["output"])
    summary = run_search(config, output, console, force=args.force, verbose=args.verbose)
    _finish_run(summary, output, console)


def compress(args: argparse.Namespace, console: Console) -> None:
    """``condensa compress CONFIG --sparsity S``."""
    from condensa.cli.runner import run_compress

    config = run_config(args)
    output = Path(config["output"])
    summary = run_compress(
        config,
        output,
        config["search"]["sparsity"],
        console,
        force=args.force,
        verbose=args.verbose,
    )
    _finish_run(summary, output, console)


def report(args: argparse.Namespace, console: Console) -> None:
    """``condensa report RUN_DIR``."""
    from condensa.cli.report import write_report

    md, page = write_report(args.run_dir)
    console.print(f"wrote {md} and {page}")


def _example(args: argparse.Namespace) -> torch.Tensor:
    fields = args.input_shape.replace("x", ",").split(",")
    try:
        shape = [int(v) for v in fields]
    except ValueError:
        shape = []
    if not shape or any(v < 1 for v in shape):
        raise ConfigError(
            f"--input-shape must be positive integers separated by commas (e.g. 1,1,28,28), "
            f"got {args.input_shape!r}"
        )
    if args.input_dtype == "int64":
        return torch.zeros(shape, dtype=torch.int64)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _check_runs(model: torch.nn.Module, example: torch.Tensor) -> None:
    """Refuse an input the model cannot take, with the model's own message."""
    try:
        with torch.no_grad():
            model(example)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"the model does not accept an input of shape {tuple(example.shape)} "
            f"({example.dtype}): {first}"
        ) from None


def _load(args: argparse.Namespace) -> torch.nn.Module:
    from condensa.io import load

    path = Path(args.model)
    if not path.is_file():
        raise ConfigError(f"model file {str(path)!r} not found")
    return load(path).eval()


def stats(args: argparse.Namespace, console: Console) -> None:
    """``condensa stats MODEL``."""
    from condensa.stats import stats as model_stats

    model = _load(args)
    example = _example(args) if args.input_shape else None
    if example is not None:
        _check_runs(model, example)
    result = model_stats(model, example)
    console.print(result.rich_table())
    size = Path(args.model).stat().st_size
    console.print(
        f"file {args.model}: {size:,} bytes; dense float32 {result.dense_bytes:,} bytes "
        f"({result.dense_bytes / size:.2f}x the file)"
    )


def thin(args: argparse.Namespace, console: Console) -> None:
    """``condensa thin MODEL --input-shape ...``."""
    from condensa.masking import bake
    from condensa.objectives import Macs
    from condensa.thinning import thin as thin_model

    model = _load(args)
    example = _example(args)
    _check_runs(model, example)
    thinned = thin_model(model, example).eval()
    table = Table(title=f"thin {args.model}")
    for column in ("", "parameters", "MACs per batch"):
        table.add_column(column, justify="right")
    dense = bake(model)
    for name, m in (("masked", dense), ("thinned", thinned)):
        table.add_row(
            name,
            f"{sum(p.numel() for p in m.parameters()):,}",
            f"{Macs('dense')(m, example).value:,.0f}",
        )
    console.print(table)
    if args.output:
        _write_deployable(model, thinned, example, Path(args.output), console)


def _write_deployable(
    model: torch.nn.Module,
    thinned: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    console: Console,
) -> None:
    if path.suffix == ".onnx":
        from condensa.export import export_onnx

        export_onnx(model, example, path)
    elif path.suffix == ".pt2":
        program = torch.export.export(thinned, (example,))
        torch.export.save(program, str(path))
    else:
        raise ConfigError(f"--output must end in .onnx or .pt2, got {str(path)!r}")
    console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def export(args: argparse.Namespace, console: Console) -> None:
    """``condensa export MODEL --input-shape ... --output M.onnx``."""
    from condensa.export import export_onnx

    path = Path(args.output)
    if path.suffix != ".onnx":
        raise ConfigError(f"--output must end in .onnx, got {str(path)!r}")
    model, example = _load(args), _example(args)
    _check_runs(model, example)
    export_onnx(model, example, path)
    console.print(f"wrote {path} ({path.stat().st_size:,} bytes), checked with onnxruntime")


def demo(args: argparse.Namespace, console: Console) -> None:
    """``condensa demo``: two searches on the digits CNN."""
    from condensa.cli.demo import run_demo

    for flag, value in (("--budget", args.budget), ("--threads", args.threads)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    run_demo(
        Path(args.output),
        console,
        budget=args.budget,
        seed=args.seed,
        threads=args.threads,
        force=args.force,
        verbose=args.verbose,
    )
