"""Collect finished `condensa search` runs into the results table beside the paper's numbers.

    python benchmarks/paper_results.py runs/fashion_lenet5_memory runs/fashion_lenet5_throughput ...

Reads each run's summary.json, merges its row into benchmarks/results/paper_results.json
(a run given again replaces its row; rows of runs not given are kept, since the run
directories themselves are not kept in git) and rewrites the generated table of
docs/results.md (between its `<!-- begin runs -->` / `<!-- end runs -->` markers).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from _report import ROOT, markdown_table, write_results

DOC = ROOT / "docs" / "results.md"


def _row(run: Path) -> dict[str, Any]:
    summary = json.loads((run / "summary.json").read_text())
    config, chosen, base = summary["config"], summary.get("chosen"), summary["baseline"]
    trials = summary["trials"]
    out: dict[str, Any] = {
        "run": run.name,
        "name": config.get("name") or run.name,
        "model": config["model"]["name"],
        "model_kwargs": config["model"]["kwargs"],
        "data": config["data"]["name"],
        "scheme": config["scheme"],
        "method": config["method"],
        "objective": config["objective"]["name"],
        "constraint": config["constraint"],
        "metric": summary["metric"],
        "budget": config["search"]["budget"],
        "evaluations": len(trials),
        "feasible_trials": sum(bool(t["feasible"]) for t in trials),
        "threshold": summary["threshold"],
        "baseline": {
            k: base.get(k) for k in ("validation", "test", "file_bytes", "macs", "throughput")
        },
        "trials_wall_s": summary.get("trials_wall_s"),
        "chosen": None,
    }
    if chosen:
        keys = (
            "target_sparsity",
            "validation",
            "test",
            "sparsity",
            "file_bytes",
            "file_ratio",
            "ideal_ratio",
            "macs_ratio",
            "speedup",
            "throughput",
        )
        out["chosen"] = {k: chosen.get(k) for k in keys}
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        c, b = r["chosen"], r["baseline"]
        scheme = r["scheme"]["type"]
        if scheme in ("FilterPrune", "NeuronPrune"):
            scheme += " (groups)"  # the CLI masks whole dependency groups
        if scheme == "Compose":
            scheme = " + ".join(
                s["type"] if s["type"] != "Quantize" else s["dtype"] for s in r["scheme"]["schemes"]
            )
        if not c:
            body.append([r["name"], scheme, r["objective"], "none feasible", "", "", "", "", ""])
            continue
        pct = r["metric"] == "accuracy"
        fmt = (lambda v: f"{v:.2%}") if pct else (lambda v: f"{v:.2f}")
        body.append(
            [
                r["name"],
                scheme,
                r["objective"],
                f"{c['target_sparsity']:.3f}",
                f"{fmt(b['test'])} → {fmt(c['test'])}",
                f"{c['file_ratio']:.2f}x",
                f"{c['macs_ratio']:.2f}x",
                f"{c['speedup']:.2f}x",
                f"{r['evaluations']}/{r['budget']}, {r['trials_wall_s'] / 60:.0f} min",
            ]
        )
    return markdown_table(
        [
            "run",
            "scheme",
            "objective",
            "chosen s",
            "test metric (baseline → chosen)",
            "file smaller",
            "MACs fewer",
            "measured speedup",
            "trials, time",
        ],
        body,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    new = {row["run"]: row for row in (_row(run) for run in args.runs)}
    path = ROOT / "benchmarks" / "results" / "paper_results.json"
    old = json.loads(path.read_text())["runs"] if path.is_file() else []  # not rerun: kept
    rows = [new.pop(row["run"], row) for row in old] + list(new.values())
    write_results("paper_results", {"runs": rows})
    text = DOC.read_text()
    begin, end = "<!-- begin runs -->", "<!-- end runs -->"
    if begin not in text:
        print(f"{DOC} lacks the {begin} marker", file=sys.stderr)
        return 2
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    DOC.write_text(pattern.sub(lambda _: f"{begin}\n{_table(rows)}\n{end}", text))
    print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
