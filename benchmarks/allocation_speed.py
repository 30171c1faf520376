"""How long does global pruning of a large model take? Planning and applying, timed.

A BERT-base encoder (109M parameters, random weights; a 100M-parameter stack of
Linear layers when transformers is not installed) is compressed with Prune(0.5)
(one global ranking over every Linear weight) and with StructurePrune(0.3) on its
dependency groups. Times are the median of 3 runs on 2 threads. Target: global
Prune under 3 s.

Run: .venv/bin/python benchmarks/allocation_speed.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from _report import markdown_table, update_docs, write_results
from torch import nn

import condensa
from condensa import schemes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _model() -> tuple[str, nn.Module, object]:
    try:
        from tests import architectures as A

        model, x = A.build_full("bert_base")
        x = {k: v[:1, :16] for k, v in x.items()}
        return "BERT-base", model, x
    except ImportError:
        layers = [nn.Linear(4096, 4096) for _ in range(6)]
        return "MLP 6x4096^2", nn.Sequential(*layers), torch.randn(1, 4096)


def _median_seconds(run, repeats: int = 3) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    torch.set_num_threads(2)
    name, model, x = _model()
    params = sum(p.numel() for p in model.parameters())
    cases = {
        "Prune(0.5), global": lambda: condensa.compress(model, schemes.Prune(0.5)),
        "StructurePrune(0.3), groups": lambda: condensa.compress(
            model, schemes.StructurePrune(0.3), x
        ),
    }
    records = []
    for label, run in cases.items():
        times = _median_seconds(run)
        records.append({"case": label, "seconds": times, "median_s": statistics.median(times)})
        print(label, times, flush=True)
    write_results("allocation_speed", {"model": name, "parameters": params, "cases": records})
    body = __doc__.split("\n\n", 1)[1].split("Run:")[0]
    body += f"Model: {name}, {params / 1e6:.0f}M parameters. Command: `.venv/bin/python "
    body += "benchmarks/allocation_speed.py`. Results: `allocation_speed.json`.\n\n"
    body += markdown_table(
        ["scheme", "median s (3 runs)", "min–max s"],
        [
            [r["case"], f"{r['median_s']:.2f}", f"{min(r['seconds']):.2f}–{max(r['seconds']):.2f}"]
            for r in records
        ],
    )
    update_docs("allocation_speed", "Allocation speed on a 100M-parameter model", body)


if __name__ == "__main__":
    main()
