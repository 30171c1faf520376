"""Is the plateaus/steps problem's score a measure of the search or of a coin?

Its optimum (sparsity 0.75-0.80) lies on a plateau whose true accuracy equals the
threshold exactly (margin 0). This script runs Condensa's search as the main benchmark
runs `condensa-dense` (same noise draws, seeds and known dense point) on that problem
and on two twins whose threshold is moved by +-DELTA points (a tenth of one reading's
noise at 0.1-point accuracy noise): with -DELTA the plateau is feasible by a hair,
with +DELTA infeasible by a hair and the optimum moves to the plateau below (0.50-0.60).
No method can tell them apart from 11 readings (10 trials and the dense model): moving
the threshold by DELTA is, to any search, moving every reading by DELTA, so the
total-variation distance between what it sees is at most sqrt(KL / 2) with
KL = 11 DELTA^2 / (2 sigma^2), and any rule's chance of answering on the plateau changes
by at most that much between them.

Run: .venv/bin/python benchmarks/search_knife_edge.py [--seeds 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing as mp
import time

from _report import markdown_table, update_docs, write_results
from search_efficiency import BUDGET, OBJECTIVE_NOISE, run, score
from search_problems import suite

DELTA = 0.01
PLATEAU = (0.6, 0.8)
"""The plateau at the threshold: accuracy 87.0 on (0.6, 0.8]."""


def _job(args: tuple[int, float, int, float]) -> dict:
    index, objective_noise, seed, shift = args
    original = suite()[index]
    problem = dataclasses.replace(original, threshold=original.threshold + shift)
    # the threshold takes no part in the noise draws: the main benchmark's readings
    result = run(problem, index, objective_noise, "condensa-dense", seed)
    found = None if result.best is None else float(result.best.sparsity)
    feasible, distance, _ = score(problem, problem.optimum(), found)
    return {
        "noise": original.noise,
        "objective_noise": objective_noise,
        "seed": seed,
        "shift": shift,
        "found": found,
        "feasible": feasible,
        "within": feasible and distance <= 0.02,
        "on_plateau": found is not None and PLATEAU[0] < found <= PLATEAU[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    problems = suite()
    indices = [
        i
        for i, p in enumerate(problems)
        if p.name.startswith("plateaus/steps/") and p.noise in (0.1, 0.3)
    ]
    shifts = (-DELTA, 0.0, DELTA)
    jobs = [
        (i, o, s, shift)
        for i in indices
        for o in OBJECTIVE_NOISE
        for s in range(args.seeds)
        for shift in shifts
    ]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        records = pool.map(_job, jobs, chunksize=1)
    wall = time.perf_counter() - start
    rows, table = [], {}
    for noise in (0.1, 0.3):
        tv = math.sqrt((BUDGET + 1) * DELTA**2 / (2 * noise**2) / 2)
        for shift in shifts:
            subset = [r for r in records if r["noise"] == noise and r["shift"] == shift]
            n = len(subset)
            entry = {
                "runs": n,
                "on_plateau": sum(r["on_plateau"] for r in subset) / n,
                "feasible": sum(r["feasible"] for r in subset) / n,
                "within_0.02_and_feasible": sum(r["within"] for r in subset) / n,
                "tv_bound": tv,
            }
            table[f"{noise}/{shift:+g}"] = entry
            rows.append(
                [
                    noise,
                    f"{shift:+g}",
                    "feasible" if shift <= 0 else "infeasible",
                    n,
                    f"{entry['on_plateau']:.2f}",
                    f"{entry['feasible']:.2f}",
                    f"{entry['within_0.02_and_feasible']:.2f}",
                    f"{tv:.2f}",
                ]
            )
    path = write_results(
        "search_knife_edge",
        {"delta": DELTA, "seeds": args.seeds, "wall_s": wall, "summary": table, "runs": records},
    )
    body = (
        "The plateaus/steps problem of the search-efficiency suite (optimum on a plateau at "
        f"margin exactly 0) and twins with the threshold moved by ±{DELTA} points; "
        "Condensa's two-stage search with the dense model as a known point, the main "
        f"benchmark's noise draws, objective noise {', '.join(f'{o:g}' for o in OBJECTIVE_NOISE)}, "
        f"{args.seeds} seeds, budget {BUDGET}. `on plateau` = answers in (0.6, 0.8]; "
        "`≤0.02` = truly feasible and within 0.02 of the (shifted) problem's optimum; "
        "`TV bound` = the most any rule's chance of an answer can differ between the three "
        f"problems (11 readings: 10 trials and the dense model). Wall time {wall / 60:.0f} min. Command: "
        f"`.venv/bin/python benchmarks/search_knife_edge.py --seeds {args.seeds}`. "
        f"Results: `{path.name}`.\n\n"
        + markdown_table(
            [
                "acc noise (pt)",
                "threshold shift",
                "plateau is",
                "runs",
                "on plateau",
                "feasible",
                "≤0.02",
                "TV bound",
            ],
            rows,
        )
    )
    update_docs("search_knife_edge", "The margin-0 plateau: a knife edge", body)
    print(body)


if __name__ == "__main__":
    main()
