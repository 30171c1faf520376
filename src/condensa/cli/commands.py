"""The subcommands' bodies: turn parsed arguments into runs, reports and tables."""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text

from condensa.atomic import write_bytes
from condensa.cli.config import parse_assignment, read_config, resolve
from condensa.cli.output import print_table
from condensa.cli.ranks import joined
from condensa.cli.record import RunReport
from condensa.cli.report import final_line
from condensa.errors import CondensaError, ConfigError

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
    "workers": ("search", "workers"),
    "ray_address": ("search", "ray_address"),
    "strategy": ("search", "strategy"),
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


def _finish_run(report: RunReport, output: Path, console: Console) -> None:
    from condensa.cli.rundir import RunDir

    run = RunDir(output)
    md, page = run.report_md, run.report_html  # written by the run
    console.quiet = False  # --quiet silences progress, never the result
    chosen, metric = report.chosen, report.metric
    if chosen:
        console.print(
            Text.assemble(
                (f"chosen sparsity {chosen.target_sparsity:.4f}", "bold"),
                f": {metric} {chosen.validation:.4f} (baseline "
                f"{report.baseline.validation:.4f}), test {chosen.test:.4f}; file "
                f"{chosen.file_ratio:.2f}x smaller; MACs {chosen.macs_ratio:.2f}x fewer; "
                f"measured speedup {chosen.speedup:.2f}x",
            )
        )
        if report.answer_note:
            console.print(f"why not another: {report.answer_note}", markup=False)
        if report.caution:
            console.print(f"caution: {report.caution}", markup=False)
        if report.final_comparison:
            console.print(final_line(report), markup=False)
    else:
        closest = report.closest
        console.print(
            Text.assemble(
                ("no feasible compression found", "bold"),
                "; closest trial: "
                + (
                    f"sparsity {closest.sparsity:.4f}, {metric} {closest.accuracy}"
                    if closest is not None
                    else "none (every trial failed)"
                ),
            )
        )
    console.print(f"report: {page}  (and {md.name})")


def _all_failed(report: RunReport) -> None:
    """Raise when no trial produced a measurement: the run is a failure, not an answer.

    Raises:
        CondensaError: every trial failed (the first error is named).

    """
    if report.chosen or not report.trials or any(t.error is None for t in report.trials):
        return
    raise CondensaError(
        f"every one of the {len(report.trials)} trials failed (first: {report.trials[0].error});"
        " fix the cause, then run again with --force to replace these failed trials"
    )


def search(args: argparse.Namespace, console: Console) -> None:
    """``condensa search CONFIG``."""
    from condensa.cli.runner import run_search

    config = run_config(args)
    output = Path(config["output"])
    with joined(config, console) as (world, console):
        summary = run_search(config, output, console, force=args.force, verbose=args.verbose)
        if world.main:
            _finish_run(summary, output, console)
        _all_failed(summary)


def compress(args: argparse.Namespace, console: Console) -> None:
    """``condensa compress CONFIG --sparsity S``."""
    from condensa.cli.runner import run_compress

    config = run_config(args)
    output = Path(config["output"])
    with joined(config, console) as (world, console):
        summary = run_compress(
            config,
            output,
            config["search"]["sparsity"],
            console,
            force=args.force,
            verbose=args.verbose,
        )
        if world.main:
            _finish_run(summary, output, console)


def report(args: argparse.Namespace, console: Console) -> None:
    """``condensa report RUN_DIR``."""
    from condensa.cli.report import write_report
    from condensa.cli.rundir import RunDir

    run = RunDir(args.run_dir)
    try:  # a missing, corrupt or incomplete summary is refused before the lock is taken
        RunReport.from_dict(run.read_summary())
    except ConfigError as exc:
        raise ConfigError(
            f"{str(run.summary)!r} is not a complete run summary ({exc}); run the search again "
            "to rewrite it"
        ) from None
    with run.locked():
        try:
            md, page = write_report(run)
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{str(run.summary)!r} is not a complete run summary ({type(exc).__name__}: "
                f"{exc}); run the search again to rewrite it"
            ) from None
    console.quiet = False
    console.print(f"wrote {md} and {page}")


MAX_INPUT_ELEMENTS = 1 << 26
"""Largest example input accepted by --input-size (64 Mi elements)."""


def _example(args: argparse.Namespace) -> torch.Tensor:
    fields = args.input_size.replace("x", ",").split(",")
    try:
        shape = [int(v) for v in fields]
    except ValueError:
        shape = []
    if not shape or len(shape) > 8 or any(v < 1 for v in shape):
        raise ConfigError(
            f"--input-size must be 1 to 8 positive integers separated by commas "
            f"(e.g. 1,1,28,28), got {args.input_size!r}"
        )
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise ConfigError(
            f"--input-size {args.input_size!r} has {math.prod(shape):,} elements; at most "
            f"{MAX_INPUT_ELEMENTS:,} (one small batch is enough)"
        )
    if args.input_dtype == "int64":
        return torch.zeros(shape, dtype=torch.int64)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _check_runs(model: torch.nn.Module, example: torch.Tensor) -> None:
    """Refuse an input the model cannot take, with the model's own message."""
    try:
        with torch.no_grad():
            model(example)
    except Exception as exc:  # noqa: BLE001 - whatever the model raises, the input is at fault
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
    return load(path, factory=args.factory).eval()


def _output(value: str, suffixes: tuple[str, ...]) -> Path:
    """A writable destination file: right suffix, an existing folder, not a folder itself."""
    from condensa.cli.rundir import check_path

    path = Path(value)
    check_path(path, "--output")
    if path.suffix not in suffixes:
        raise ConfigError(f"--output must end in {' or '.join(suffixes)}, got {value!r}")
    if path.is_dir():
        raise ConfigError(f"--output {value!r} is a directory; name a file inside it")
    if not path.parent.is_dir():
        raise ConfigError(
            f"--output {value!r}: folder {str(path.parent)!r} does not exist; create it first"
        )
    return path


def stats(args: argparse.Namespace, console: Console) -> None:
    """``condensa stats MODEL``."""
    from condensa.stats import stats as model_stats

    model = _load(args)
    example = _example(args) if args.input_size is not None else None
    if example is not None:
        _check_runs(model, example)
    result = model_stats(model, example)
    console.quiet = False  # -q silences progress, never the result
    print_table(console, result.rich_table())
    size = Path(args.model).stat().st_size
    console.print(
        f"file {args.model}: {size:,} bytes; dense float32 {result.dense_bytes:,} bytes "
        f"({result.dense_bytes / size:.2f}x the file)"
    )


def thin(args: argparse.Namespace, console: Console) -> None:
    """``condensa thin MODEL --input-size ...``."""
    from condensa.masking import bake
    from condensa.objectives import Macs
    from condensa.thinning import thin_report

    output = _output(args.output, (".onnx", ".pt2")) if args.output else None
    model = _load(args)
    example = _example(args)
    _check_runs(model, example)
    report = thin_report(model, example)
    thinned = report.model.eval()
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
    console.quiet = False
    print_table(console, table)
    for kept in report.kept[:8]:
        console.print(
            f"kept {len(kept.channels)} pruned channel(s) of {kept.root!r}: {kept.reason}"
        )
    if len(report.kept) > 8:
        console.print(f"... and {len(report.kept) - 8} more groups kept")
    if output is not None:
        _write_deployable(model, thinned, example, output, console)


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
    else:
        program = torch.export.export(thinned, (example,))
        buffer = io.BytesIO()  # serialized in memory, so a full disk fails in Python, cleanly
        torch.export.save(program, buffer)
        write_bytes(path, buffer.getvalue())
    console.quiet = False
    console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def export(args: argparse.Namespace, console: Console) -> None:
    """``condensa export MODEL --input-size ... --output M.onnx``."""
    from condensa.export import export_onnx

    path = _output(args.output, (".onnx",))
    model, example = _load(args), _example(args)
    _check_runs(model, example)
    export_onnx(model, example, path)
    console.quiet = False
    console.print(f"wrote {path} ({path.stat().st_size:,} bytes), checked with onnxruntime")


def demo(args: argparse.Namespace, console: Console) -> None:
    """``condensa demo``: two searches on the digits CNN."""
    from condensa.cli.config import check_threads
    from condensa.cli.demo import run_demo

    if args.budget < 1:
        raise ConfigError(f"--budget must be >= 1, got {args.budget}")
    check_threads(args.threads, "--threads")
    run_demo(
        Path(args.output),
        console,
        budget=args.budget,
        seed=args.seed,
        threads=args.threads,
        force=args.force,
        verbose=args.verbose,
    )
