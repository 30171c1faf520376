"""How well does the sparsity search use its 10 evaluations? Against five baselines, under noise.

For each of 48 problems (benchmarks/search_problems.py: accuracy shapes x objective
shapes x threshold depths x accuracy noise 0 / 0.1 / 0.3 / 1 point), each objective
noise level (0 / 10 / 30 % multiplicative: a busy machine's speed measurements) and
each seed, every strategy gets a budget of 10 evaluations through the same seam
(`search_sparsity(strategy=...)`) and returns one evaluated point. `condensa-dense` is
the two-stage search given the uncompressed model as a known point (one noisy accuracy
reading at sparsity 0 and the objective there), as `search_compression` gives it. Each
evaluation reports its standard errors (the accuracy noise in points; the objective
noise times |the reading|, not the true objective, which would leak it), as Condensa's
trainer and speed objectives do; only the two-stage search
uses them. We record whether the returned point is truly feasible (noiseless accuracy
>= threshold), its distance to the nearest optimal sparsity, the objective regret
(normalized by the feasible objective range; 1 when nothing or an infeasible point is
returned), the evaluations used and the repeated points (pairs closer than 0.001).

Run: .venv/bin/python benchmarks/search_efficiency.py [--seeds 4] [--workers 2]
Needs the bench extra (optuna) for 'tpe'.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import statistics
import time
import warnings

import numpy as np
import torch
from _report import markdown_table, update_docs, write_results
from search_problems import TOLERANCE, Problem, suite

BUDGET = 10
BOUNDS = (0.0, 0.99)
METHODS = ("condensa", "condensa-dense", "bisection", "random", "grid", "bo", "tpe")
STRATEGY = {"condensa": "two-stage", "condensa-dense": "two-stage", "bo": "bo"}
OBJECTIVE_NOISE = (0.0, 0.1, 0.3)


def _noisy(problem: Problem, objective_noise: float, seed: int):
    rng = np.random.default_rng(seed)

    def evaluate(s: float) -> dict:
        accuracy = float(problem.accuracy(np.array([s]))[0]) + rng.normal(0.0, problem.noise)
        f = float(problem.objective(np.array([s]))[0])
        reading = f + objective_noise * abs(f) * rng.normal()
        return {
            "accuracy": accuracy,
            "objective": reading,
            "accuracy_se": problem.noise,
            # estimated from the reading, as a speed measurement's is (relative to the
            # measured value): the true |f| here would hand the search the objective
            "objective_se": objective_noise * abs(reading),
        }

    return evaluate


def _dense(problem: Problem, seed: int) -> list[dict]:
    """The uncompressed model as ``search_compression`` gives it: one accuracy reading, 1.0x."""
    rng = np.random.default_rng(7_000_000 + seed)
    zero = np.array([0.0])
    return [
        {
            "sparsity": 0.0,
            "accuracy": float(problem.accuracy(zero)[0]) + rng.normal(0.0, problem.noise),
            "objective": float(problem.objective(zero)[0]),  # a speedup's is exactly 1.0x
            "accuracy_se": problem.noise,
            "objective_se": 0.0,
        }
    ]


def run(problem: Problem, problem_index: int, objective_noise: float, method: str, seed: int):
    """One search of ``problem`` by ``method`` (the noise draws of suite entry ``problem_index``)."""
    from condensa.search import search_sparsity

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    evaluate = _noisy(problem, objective_noise, 1_000 * problem_index + seed)
    ours = method.startswith("condensa")
    known = _dense(problem, 1_000 * problem_index + seed) if method == "condensa-dense" else []
    return search_sparsity(
        evaluate,
        accuracy_threshold=problem.threshold,
        budget=BUDGET,
        bounds=BOUNDS,
        seed=seed,
        strategy=STRATEGY.get(method, method),
        deterministic=problem.noise == 0.0 and ours,
        monotone=problem.name.split("/")[1] == "monotone" and ours,
        known=known,
    )


def _job(args):
    problem_index, objective_noise, method, seed = args
    problem = suite()[problem_index]
    optimum = problem.optimum()
    start = time.perf_counter()
    result = run(problem, problem_index, objective_noise, method, seed)
    wall = time.perf_counter() - start
    found = None if result.best is None else float(result.best.sparsity)
    points = [float(t.sparsity) for t in result.trials]
    repeats = sum(1 for i, a in enumerate(points) for b in points[:i] if abs(a - b) < 1e-3)
    feasible, distance, regret = score(problem, optimum, found)
    return {
        "problem": problem.name,
        "noise": problem.noise,
        "objective_noise": objective_noise,
        "method": method,
        "seed": seed,
        "found": found,
        "feasible": feasible,
        "distance": distance,
        "regret": regret,
        "evaluations": len(result.trials),
        "repeats": repeats,
        "wall_s": wall,
        "overhead_s": [t.overhead_s for t in result.trials],
    }


def score(problem: Problem, optimum: dict, found: float | None) -> tuple[bool, float, float]:
    """``(truly feasible, distance to the optimal set, normalized regret)`` of an answer."""
    if found is None:
        return False, math.nan, 1.0
    true_acc = float(problem.accuracy(np.array([found]))[0])
    feasible = true_acc >= problem.threshold - TOLERANCE
    distance = problem.distance(found, optimum)
    f = float(problem.objective(np.array([found]))[0])
    spread = optimum["objective"] - optimum["f_min"] or 1.0
    # an infeasible answer is worth nothing: full regret; one at least as good as the
    # grid's optimum (an exact boundary point between grid points) is optimal
    regret = max(0.0, (optimum["objective"] - f) / spread) if feasible else 1.0
    if feasible and f >= optimum["objective"]:
        distance = 0.0
    return feasible, distance, regret


def reused(methods: list[str], seeds: int) -> list[dict]:
    """The last run's records of the methods not rerun, rescored with today's definitions.

    A strategy whose code did not change gives the same answers for the same problems and
    seeds, so its records are reused (``--methods condensa --reuse``) and only rescored.
    """
    import json

    from _report import RESULTS

    path = RESULTS / "search_efficiency.json"
    if not path.exists():
        return []
    problems = {p.name: p for p in suite()}
    out = []
    for record in json.loads(path.read_text())["runs"]:
        if record["method"] in methods or record["seed"] >= seeds:
            continue
        problem = problems[record["problem"]]
        feasible, distance, regret = score(problem, problem.optimum(), record["found"])
        out.append({**record, "feasible": feasible, "distance": distance, "regret": regret})
    return out


def overhead_d8(seed: int = 0) -> dict[str, float]:
    """Search overhead per trial for an 8-dimensional sparsity vector (budget 24)."""
    from condensa.search import search_sparsity

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.5, 1.5, 8)

    def evaluate(v):
        drop = float(np.sum(weights * np.maximum(0.0, np.array(v) - 0.6) ** 2)) * 40
        return 90.0 - drop + rng.normal(0, 0.1), float(np.mean(v))

    result = search_sparsity(
        evaluate, accuracy_threshold=89.0, bounds=[(0.0, 0.95)] * 8, budget=24, seed=seed
    )
    bo = [t.overhead_s for t in result.trials if t.stage == "bo"]
    return {"median_s": statistics.median(bo), "max_s": max(bo), "trials": len(bo)}


def summarize(records: list[dict]) -> tuple[list[list], dict]:
    rows, table = [], {}
    levels = sorted({(r["noise"], r["objective_noise"]) for r in records})
    for noise, objective_noise in [*levels, ("all", "all")]:
        for method in METHODS:
            subset = [
                r
                for r in records
                if r["method"] == method
                and (
                    noise == "all" or (r["noise"], r["objective_noise"]) == (noise, objective_noise)
                )
            ]
            if not subset:
                continue
            distances = [r["distance"] for r in subset if r["feasible"]]
            regrets = [r["regret"] for r in subset]
            within = sum(1 for r in subset if r["feasible"] and r["distance"] <= 0.02) / len(subset)
            entry = {
                "runs": len(subset),
                "feasible_fraction": sum(r["feasible"] for r in subset) / len(subset),
                "within_0.02_and_feasible": within,
                "distance_mean": statistics.mean(distances) if distances else math.nan,
                "regret_mean": statistics.mean(regrets),
                "regret_p90": float(np.percentile(regrets, 90)),
                "evaluations_mean": statistics.mean(r["evaluations"] for r in subset),
                "repeats_per_run": statistics.mean(r["repeats"] for r in subset),
            }
            table[f"{noise}/{objective_noise}/{method}"] = entry
            rows.append(
                [
                    noise,
                    objective_noise,
                    method,
                    f"{entry['feasible_fraction']:.2f}",
                    f"{entry['within_0.02_and_feasible']:.2f}",
                    f"{entry['distance_mean']:.4f}",
                    f"{entry['regret_mean']:.4f}",
                    f"{entry['regret_p90']:.4f}",
                    f"{entry['evaluations_mean']:.1f}",
                    f"{entry['repeats_per_run']:.2f}",
                ]
            )
    return rows, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--quick", action="store_true", help="2 seeds, 6 problems")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the last run's records of the other methods"
    )
    args = parser.parse_args()
    problems = suite()
    indices = range(0, len(problems), 8) if args.quick else range(len(problems))
    seeds = range(2 if args.quick else args.seeds)
    jobs = [
        (i, o, m, s) for i in indices for o in OBJECTIVE_NOISE for m in args.methods for s in seeds
    ]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        records = []
        for k, record in enumerate(pool.imap_unordered(_job, jobs, chunksize=4), start=1):
            records.append(record)
            if k % 200 == 0:
                print(f"{k}/{len(jobs)} runs, {time.perf_counter() - start:.0f}s", flush=True)
    wall = time.perf_counter() - start
    if args.reuse:
        records += reused(args.methods, len(seeds))
    rows, table = summarize(records)
    overhead_1d = [o for r in records if r["method"] == "condensa" for o in r["overhead_s"][3:]]
    d8 = overhead_d8()
    overhead = {
        "d1_median_s": statistics.median(overhead_1d),
        "d1_p90_s": float(np.percentile(overhead_1d, 90)),
        "d1_max_s": max(overhead_1d),
        "d8": d8,
    }
    name = "search_efficiency_quick" if args.quick else "search_efficiency"
    path = write_results(
        name,
        {
            "budget": BUDGET,
            "bounds": BOUNDS,
            "problems": [problems[i].name for i in indices],
            "objective_noise": OBJECTIVE_NOISE,
            "seeds": len(seeds),
            "wall_s": wall,
            "summary": table,
            "overhead": overhead,
            "runs": records,
        },
    )
    body = (
        f"{len(list(indices))} problems x {len(OBJECTIVE_NOISE)} objective-noise levels x "
        f"{len(seeds)} seeds, budget {BUDGET} evaluations, bounds {BOUNDS}; accuracy in percent "
        "with Gaussian noise of the given points; objective noise multiplicative (Gaussian, "
        "the given fraction of |objective|). Every method runs through `search_sparsity(strategy=)`. "
        "`feasible` = the returned point is truly feasible; `≤0.02` = truly feasible and within "
        "0.02 of an optimal sparsity; distance over truly feasible answers; regret normalized by "
        "the feasible objective range (1 for no or infeasible answer); `repeats` = pairs of "
        "trials closer than 0.001 per run. "
        f"Wall time {wall / 60:.0f} min on {args.workers} single-threaded workers"
        + (
            f" for {', '.join(args.methods)}; the other methods' records are the previous run's "
            "(their code unchanged, same problems and seeds), rescored with today's definitions. "
            if args.reuse
            else ". "
        )
        + f"Search overhead per trial (GP fits + acquisition): d = 1 median "
        f"{overhead['d1_median_s']:.2f} s (p90 {overhead['d1_p90_s']:.2f} s, max {overhead['d1_max_s']:.2f} s); "
        f"d = 8 median {d8['median_s']:.2f} s (max {d8['max_s']:.2f} s). "
        f"Command: `.venv/bin/python benchmarks/search_efficiency.py --seeds {len(seeds)}"
        f"{' --methods ' + ' '.join(args.methods) + ' --reuse' if args.reuse else ''}`. "
        f"Results: `{path.name}`.\n\n"
        + markdown_table(
            [
                "acc noise (pt)",
                "obj noise",
                "method",
                "feasible",
                "≤0.02",
                "dist mean",
                "regret mean",
                "regret p90",
                "evals",
                "repeats",
            ],
            rows,
        )
    )
    if not args.quick:
        update_docs("search_efficiency", "Sparsity search efficiency (budget 10)", body)
    print(body)


if __name__ == "__main__":
    main()
