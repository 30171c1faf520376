"""`condensa demo`: the main job on the embedded default, end to end, in a few minutes.

A small CNN is trained on scikit-learn's digits, then two constrained searches infer
the sparsity (at most 1 accuracy point below the baseline, 10 compressions each, short
L-C runs): the smallest file with ``Compose([Prune(s), Quantize("float16")])``, and the
highest measured throughput with ``FilterPrune(s)``. Each search writes a run
directory with a report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from condensa.cli.config import resolve
from condensa.cli.output import print_table
from condensa.cli.record import RunReport


def demo_configs(
    output: Path, *, budget: int, seed: int, threads: int
) -> dict[str, dict[str, Any]]:
    """The two runs' configs (the second reuses the first's baseline model)."""
    common: dict[str, Any] = {
        "seed": seed,
        "threads": threads,
        "model": {"name": "digits_cnn"},
        "data": {"name": "digits", "batch_size": 64},
        "train": {"epochs": 15, "lr": 3e-3, "schedule": "cosine"},
        "method": {
            "name": "lc",
            "options": {"iterations": 3, "steps": 50, "first_steps": 80, "finetune_steps": 100},
        },
        "constraint": {"max_drop": 0.01},
        "search": {"budget": budget, "bounds": [0.0, 0.99]},
    }
    memory = {
        **common,
        "name": "demo: smallest file (Prune + float16)",
        "output": str(output / "memory"),
        "scheme": {
            "type": "Compose",
            "schemes": [
                {"type": "Prune", "sparsity": 0.5},
                {"type": "Quantize", "dtype": "float16"},
            ],
        },
        "objective": {"name": "file-size"},
    }
    throughput = {
        **common,
        "name": "demo: fastest model (FilterPrune)",
        "output": str(output / "throughput"),
        "model": {"name": "digits_cnn", "checkpoint": str(output / "memory" / "baseline.condensa")},
        "scheme": {"type": "FilterPrune", "sparsity": 0.5},
        "objective": {"name": "throughput", "batch_size": 256, "repeats": 15},
    }
    return {
        name: resolve([("demo", spec)])
        for name, spec in (("memory", memory), ("throughput", throughput))
    }


def run_demo(
    output: Path,
    console: Console,
    *,
    budget: int = 10,
    seed: int = 0,
    threads: int = 2,
    force: bool = False,
    verbose: bool = False,
) -> dict[str, RunReport]:
    """Run both searches and their reports; print what was chosen. Returns the run records."""
    from condensa.cli.rundir import RunDir
    from condensa.cli.runner import run_search

    start = time.perf_counter()
    summaries: dict[str, RunReport] = {}
    pages: dict[str, Path] = {}
    for name, config in demo_configs(output, budget=budget, seed=seed, threads=threads).items():
        console.rule(Text(config["name"], style="bold"))
        summaries[name] = run_search(
            config, Path(config["output"]), console, force=force, verbose=verbose
        )
        pages[name] = RunDir(config["output"]).report_html
    table = Table(
        title=f"Condensa demo: digits CNN, budget {budget}, at most 1 point below baseline"
    )
    for column in ("search", "chosen sparsity", "accuracy", "baseline", "file", "MACs", "speedup"):
        table.add_column(column, justify="left" if column == "search" else "right")
    for name, report in summaries.items():
        chosen, base = report.chosen, report.baseline
        if not chosen:
            table.add_row(name, "none feasible", "—", f"{base.validation:.2%}", "—", "—", "—")
            continue
        table.add_row(
            name,
            f"{chosen.target_sparsity:.3f}",
            f"{chosen.validation:.2%}",
            f"{base.validation:.2%}",
            f"{chosen.file_ratio:.1f}x smaller",
            f"{chosen.macs_ratio:.2f}x fewer",
            f"{chosen.speedup:.2f}x",
        )
    console.quiet = False  # -q silences progress, never the result
    print_table(console, table)
    for name, page in pages.items():
        console.print(f"report ({name}): {page}")
    console.print(f"done in {time.perf_counter() - start:.0f}s")
    return summaries
