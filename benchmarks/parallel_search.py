"""Parallel trials: q = 1, 2, 4 points per round at one budget, and a real search on Ray.

Part 1 (problem suite): for each of the 48 problems of benchmarks/search_problems.py,
each seed and q in (1, 2, 4), the default two-stage search gets 10 evaluations,
proposed q per round (Kriging believer, `search_sparsity(pool=SerialPool(q))`: the
rounds a q-worker pool would take). We record the hit rate (the answer is truly
feasible and within 0.02 of an optimal sparsity), the feasible fraction and the
rounds used. Target: q = 2 within 5 % of q = 1's hit rate in about half the rounds.

Part 2 (`--real`): `condensa search` of a Fashion-MNIST LeNet-5 config (budget 10)
with 1 worker (2 threads) and with 2 Ray workers (1 thread each), on this machine;
the wall-time ratio and the chosen sparsities.

Run: .venv/bin/python benchmarks/parallel_search.py [--seeds 2] [--real]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _report import RESULTS, ROOT, markdown_table, update_docs, write_results
from search_efficiency import _noisy
from search_problems import suite

BUDGET = 10
BOUNDS = (0.0, 0.99)
QS = (1, 2, 4)
REAL_CONFIG = ROOT / "examples" / "configs" / "fashion_lenet5_memory.toml"


def _job(args: tuple[int, int, int]) -> dict:
    problem_index, q, seed = args
    from condensa.search import search_sparsity
    from condensa.search.pool import SerialPool

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    problem = suite()[problem_index]
    optimum = problem.optimum()
    evaluate = _noisy(problem, 0.0, 1_000 * problem_index + seed)
    start = time.perf_counter()
    result = search_sparsity(
        evaluate,
        accuracy_threshold=problem.threshold,
        budget=BUDGET,
        bounds=BOUNDS,
        seed=seed,
        deterministic=problem.noise == 0.0,
        monotone=problem.name.split("/")[1] == "monotone",
        pool=SerialPool(q),
    )
    found = None if result.best is None else float(result.best.sparsity)
    feasible = found is not None and float(problem.accuracy(np.array([found]))[0]) >= (
        problem.threshold
    )
    hit = feasible and problem.distance(found, optimum) <= 0.02  # type: ignore[arg-type]
    rounds = (
        len(result.trials) if q == 1 else max((t.extra["round"] for t in result.trials), default=0)
    )
    return {
        "problem": problem.name,
        "noise": problem.noise,
        "q": q,
        "seed": seed,
        "found": found,
        "feasible": feasible,
        "hit": hit,
        "evaluations": len(result.trials),
        "rounds": rounds,
        "wall_s": time.perf_counter() - start,
    }


def suite_part(seeds: int, workers: int) -> tuple[list[dict], dict, float]:
    jobs = [(i, q, s) for i in range(len(suite())) for s in range(seeds) for q in QS]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:
        records = []
        for k, record in enumerate(pool.imap_unordered(_job, jobs, chunksize=2), start=1):
            records.append(record)
            if k % 50 == 0:
                print(f"{k}/{len(jobs)} runs, {time.perf_counter() - start:.0f}s", flush=True)
    table = {}
    for noise in [*sorted({r["noise"] for r in records}), "all"]:
        for q in QS:
            subset = [r for r in records if r["q"] == q and noise in ("all", r["noise"])]
            table[f"{noise}/{q}"] = {
                "runs": len(subset),
                "hit_rate": sum(r["hit"] for r in subset) / len(subset),
                "feasible_fraction": sum(r["feasible"] for r in subset) / len(subset),
                "rounds_mean": statistics.mean(r["rounds"] for r in subset),
                "evaluations_mean": statistics.mean(r["evaluations"] for r in subset),
            }
    return records, table, time.perf_counter() - start


def _search(config: Path, out: Path, workers: int, threads: int) -> dict:
    command = [sys.executable, "-m", "condensa", "search", str(config), "--output", str(out),
               "--threads", str(threads), "--force", "-q"]  # fmt: skip
    if workers > 1:
        command += ["--workers", str(workers)]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    chosen = summary.get("chosen") or {}
    return {
        "workers": workers,
        "threads_per_trial": threads,
        "wall_s": wall,
        "trials_wall_s": summary.get("trials_wall_s"),
        "trials": len(summary["trials"]),
        "chosen_sparsity": chosen.get("target_sparsity"),
        "chosen_validation": chosen.get("validation"),
        "chosen_test": chosen.get("test"),
    }


def real_part(steps: int) -> list[dict]:
    text = REAL_CONFIG.read_text()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "fashion_lenet5.toml"
        assert "options = { steps = 2200 }" in text
        config.write_text(text.replace("steps = 2200", f"steps = {steps}"))
        base = Path(tmp) / "base"  # train the baseline once, outside the timed searches
        subprocess.run([sys.executable, "-m", "condensa", "compress", str(config), "--output",
                        str(base), "--sparsity", "0.5", "-q"], check=True, cwd=ROOT)  # fmt: skip
        for workers, threads in ((1, 2), (2, 1)):
            out = Path(tmp) / f"workers{workers}"
            out.mkdir()
            # the same baseline model, so both searches compress the same network
            for name in ("config.toml", "baseline.condensa"):
                (out / name).write_bytes((base / name).read_bytes())
            runs.append(_search(config, out, workers, threads))
    return runs


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--real", action="store_true", help="also the Fashion-MNIST Ray search")
    parser.add_argument("--steps", type=int, default=600, help="GMP steps per real trial")
    parser.add_argument("--real-only", action="store_true", help="rerun only the real search")
    args = parser.parse_args()
    if args.real_only:  # keep the suite part of the last results, rerun the real search
        previous = json.loads((RESULTS / "parallel_search.json").read_text())
        records, table, wall = previous["runs"], previous["summary"], previous["wall_s"]
    else:
        records, table, wall = suite_part(args.seeds, args.workers)
    real = real_part(args.steps) if args.real or args.real_only else []
    path = write_results(
        "parallel_search",
        {"budget": BUDGET, "seeds": args.seeds, "qs": QS, "wall_s": wall, "summary": table,
         "real": real, "runs": records},
    )  # fmt: skip
    rows = [
        [key.split("/")[0], key.split("/")[1], f"{e['hit_rate']:.3f}",
         f"{e['feasible_fraction']:.3f}", f"{e['rounds_mean']:.1f}", f"{e['evaluations_mean']:.1f}"]
        for key, e in table.items()
    ]  # fmt: skip
    one, two = table["all/1"], table["all/2"]
    body = (
        f"{len(suite())} problems x {args.seeds} seeds x q in {QS}, budget {BUDGET} evaluations, "
        "default two-stage search, q points proposed per round (Kriging believer), objective "
        "noise 0. `hit` = the answer is truly feasible and within 0.02 of an optimal sparsity. "
        f"All problems: q = 2 hit rate {two['hit_rate']:.3f} vs q = 1 {one['hit_rate']:.3f} "
        f"({two['hit_rate'] / one['hit_rate']:.1%} of it; target >= 95 %) in "
        f"{two['rounds_mean']:.1f} vs {one['rounds_mean']:.1f} rounds "
        f"({two['rounds_mean'] / one['rounds_mean']:.0%}). Wall time {wall / 60:.0f} min on "
        f"{args.workers} single-threaded processes. Command: `.venv/bin/python "
        f"benchmarks/parallel_search.py --seeds {args.seeds}"
        f"{f' --real --steps {args.steps}' if real else ''}`. "
        f"Results: `{path.name}`.\n\n"
        + markdown_table(["acc noise (pt)", "q", "hit", "feasible", "rounds", "evaluations"], rows)
    )
    if real:
        base = real[0]["wall_s"]
        body += (
            f"\n\nReal search: `{REAL_CONFIG.relative_to(ROOT)}` with GMP at {args.steps} steps "
            "per trial, budget 10, one baseline model trained beforehand (not timed), on this "
            "2-core machine: 1 worker with 2 threads vs 2 Ray workers with 1 thread each; wall "
            "= the whole `condensa search` command (Ray start-up, the chosen model's "
            "measurements and report included); mean trial = seconds inside one trial.\n\n"
            + markdown_table(
                [
                    "workers",
                    "threads per trial",
                    "wall (s)",
                    "wall ratio",
                    "trials",
                    "mean trial (s)",
                    "chosen sparsity",
                    "validation",
                    "test",
                ],
                [
                    [
                        r["workers"],
                        r["threads_per_trial"],
                        f"{r['wall_s']:.0f}",
                        f"{r['wall_s'] / base:.2f}",
                        r["trials"],
                        f"{r['trials_wall_s'] / r['trials']:.1f}",
                        _num(r["chosen_sparsity"]),
                        _num(r["chosen_validation"]),
                        _num(r["chosen_test"]),
                    ]
                    for r in real
                ],
            )  # fmt: skip
        )
    update_docs("parallel_search", "Parallel trials (q points per round; Ray)", body)
    print(body)


if __name__ == "__main__":
    main()
