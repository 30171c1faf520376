"""How well does the sparsity search use its 10 evaluations? Against five baselines.

For each of 48 problems (benchmarks/search_problems.py: accuracy shapes x objective
shapes x threshold depths x noise levels 0 / 0.1 / 0.3 / 1 point) and 20 seeds, every
method gets a budget of 10 evaluations of a noisy accuracy (the objective is exact)
and returns one evaluated point. We record whether that point is truly feasible
(noiseless accuracy >= threshold), its distance to the nearest optimal sparsity, the
objective regret (normalized by the feasible objective range; 1 when nothing is
returned), and the evaluations used. Also measured: the search's own overhead per
trial (GP fitting + acquisition) for d = 1 and d = 8.

Run: .venv/bin/python benchmarks/search_efficiency.py [--seeds 20] [--workers 2]
Needs the bench extra (optuna).
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
from search_problems import Problem, suite

BUDGET = 10
BOUNDS = (0.0, 0.99)
METHODS = ("condensa", "bisection", "random", "grid", "qlognei", "optuna-tpe")


def _noisy(problem: Problem, seed: int):
    rng = np.random.default_rng(seed)

    def evaluate(s: float) -> tuple[float, float]:
        accuracy = float(problem.accuracy(np.array([s]))[0]) + rng.normal(0.0, problem.noise)
        return accuracy, float(problem.objective(np.array([s]))[0])

    return evaluate


def _best_observed(points, problem: Problem):
    feasible = [(s, a, f) for s, a, f in points if a >= problem.threshold]
    return max(feasible, key=lambda p: p[2])[0] if feasible else None


def run_condensa(problem, evaluate, seed):
    from condensa.search import search_sparsity

    result = search_sparsity(
        evaluate, accuracy_threshold=problem.threshold, budget=BUDGET, bounds=BOUNDS, seed=seed
    )
    overhead = [t.overhead_s for t in result.trials]
    return (None if result.best is None else result.best.sparsity), len(result.trials), overhead


def run_bisection(problem, evaluate, seed):
    lo, hi, points = BOUNDS[0], BOUNDS[1], []
    for _ in range(BUDGET):
        mid = 0.5 * (lo + hi)
        a, f = evaluate(mid)
        points.append((mid, a, f))
        lo, hi = (mid, hi) if a >= problem.threshold else (lo, mid)
    return _best_observed(points, problem), len(points), []


def run_random(problem, evaluate, seed):
    rng = np.random.default_rng(10_000 + seed)
    points = [(s, *evaluate(s)) for s in rng.uniform(*BOUNDS, BUDGET)]
    return _best_observed(points, problem), len(points), []


def run_grid(problem, evaluate, seed):
    points = [(s, *evaluate(s)) for s in np.linspace(*BOUNDS, BUDGET)]
    return _best_observed(points, problem), len(points), []


def run_qlognei(problem, evaluate, seed):
    """BoTorch constrained qLogNEI (objective GP + accuracy GP), acquisition on a grid."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.objective import GenericMCObjective
    from botorch.models import ModelListGP

    from condensa.search.surrogate import fit_gp

    rng = np.random.default_rng(20_000 + seed)
    xs = [(i + rng.uniform(0.15, 0.85)) / 3 for i in range(3)]
    points = []
    grid = torch.linspace(0, 1, 201, dtype=torch.float64).reshape(-1, 1, 1)
    span = BOUNDS[1] - BOUNDS[0]
    for k in range(BUDGET):
        if k >= 3:
            torch.manual_seed(seed + k)
            x = torch.tensor([[(p[0] - BOUNDS[0]) / span] for p in points], dtype=torch.float64)
            acc = torch.tensor([p[1] - problem.threshold for p in points], dtype=torch.float64)
            obj = torch.tensor([p[2] for p in points], dtype=torch.float64)
            model = ModelListGP(fit_gp(x, obj), fit_gp(x, acc))
            acq = qLogNoisyExpectedImprovement(
                model,
                X_baseline=x,
                objective=GenericMCObjective(lambda z, X=None: z[..., 0]),
                constraints=[lambda z: -z[..., 1]],
            )
            with torch.no_grad():
                values = acq(grid)
            xs.append(float(grid[int(values.argmax()), 0, 0]))
        s = BOUNDS[0] + xs[k] * span
        points.append((s, *evaluate(s)))
    return _best_observed(points, problem), len(points), []


def run_optuna(problem, evaluate, seed):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    points = []

    def objective(trial):
        s = trial.suggest_float("s", *BOUNDS)
        a, f = evaluate(s)
        points.append((s, a, f))
        trial.set_user_attr("c", problem.threshold - a)
        return f

    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=3, constraints_func=lambda t: (t.user_attrs["c"],)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=BUDGET)
    return _best_observed(points, problem), len(points), []


RUNNERS = {
    "condensa": run_condensa,
    "bisection": run_bisection,
    "random": run_random,
    "grid": run_grid,
    "qlognei": run_qlognei,
    "optuna-tpe": run_optuna,
}


def _job(args):
    problem_index, method, seed = args
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    problem = suite()[problem_index]
    optimum = problem.optimum()
    start = time.perf_counter()
    found, used, overhead = RUNNERS[method](
        problem, _noisy(problem, 1_000 * problem_index + seed), seed
    )
    wall = time.perf_counter() - start
    if found is None:
        feasible, distance, regret = False, math.nan, 1.0
    else:
        true_acc = float(problem.accuracy(np.array([found]))[0])
        feasible = true_acc >= problem.threshold
        distance = problem.distance(found, optimum)
        f = float(problem.objective(np.array([found]))[0])
        spread = optimum["objective"] - optimum["f_min"] or 1.0
        # an infeasible answer is worth nothing: full regret
        regret = (optimum["objective"] - f) / spread if feasible else 1.0
    return {
        "problem": problem.name,
        "noise": problem.noise,
        "method": method,
        "seed": seed,
        "found": found,
        "feasible": feasible,
        "distance": distance,
        "regret": regret,
        "evaluations": used,
        "wall_s": wall,
        "overhead_s": overhead,
    }


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
    for noise in sorted({r["noise"] for r in records}) + ["all"]:
        for method in METHODS:
            subset = [
                r
                for r in records
                if r["method"] == method and (noise == "all" or r["noise"] == noise)
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
                "distance_p90": float(np.percentile(distances, 90)) if distances else math.nan,
                "regret_mean": statistics.mean(regrets),
                "regret_p90": float(np.percentile(regrets, 90)),
                "evaluations_mean": statistics.mean(r["evaluations"] for r in subset),
            }
            table[f"{noise}/{method}"] = entry
            rows.append(
                [
                    noise,
                    method,
                    f"{entry['feasible_fraction']:.2f}",
                    f"{entry['within_0.02_and_feasible']:.2f}",
                    f"{entry['distance_mean']:.4f}",
                    f"{entry['distance_p90']:.4f}",
                    f"{entry['regret_mean']:.4f}",
                    f"{entry['regret_p90']:.4f}",
                    f"{entry['evaluations_mean']:.1f}",
                ]
            )
    return rows, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--quick", action="store_true", help="2 seeds, 6 problems")
    args = parser.parse_args()
    problems = suite()
    indices = range(0, len(problems), 8) if args.quick else range(len(problems))
    seeds = range(2 if args.quick else args.seeds)
    jobs = [(i, m, s) for i in indices for m in args.methods for s in seeds]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        records = []
        for k, record in enumerate(pool.imap_unordered(_job, jobs, chunksize=4), start=1):
            records.append(record)
            if k % 200 == 0:
                print(f"{k}/{len(jobs)} runs, {time.perf_counter() - start:.0f}s", flush=True)
    wall = time.perf_counter() - start
    rows, table = summarize(records)
    overhead_1d = [o for r in records if r["method"] == "condensa" for o in r["overhead_s"][3:]]
    d8 = overhead_d8()
    overhead = {
        "d1_median_s": statistics.median(overhead_1d),
        "d1_p90_s": float(np.percentile(overhead_1d, 90)),
        "d1_max_s": max(overhead_1d),
        "d8": d8,
    }
    path = write_results(
        "search_efficiency",
        {
            "budget": BUDGET,
            "bounds": BOUNDS,
            "problems": [problems[i].name for i in indices],
            "seeds": len(seeds),
            "wall_s": wall,
            "summary": table,
            "overhead": overhead,
            "runs": records,
        },
    )
    body = (
        f"{len(list(indices))} problems x {len(seeds)} seeds, budget {BUDGET} evaluations, bounds "
        f"{BOUNDS}; accuracy in percent with Gaussian noise of the given points, exact objective. "
        "`feasible` = the returned point is truly feasible; `≤0.02` = truly feasible and within "
        "0.02 of an optimal sparsity; distance over truly feasible answers; regret normalized by "
        "the feasible objective range (1 for no or infeasible answer). "
        f"Wall time {wall / 60:.0f} min on {args.workers} single-threaded workers. "
        f"Search overhead per trial (GP fits + acquisition): d = 1 median "
        f"{overhead['d1_median_s']:.2f} s (p90 {overhead['d1_p90_s']:.2f} s, max {overhead['d1_max_s']:.2f} s); "
        f"d = 8 median {d8['median_s']:.2f} s (max {d8['max_s']:.2f} s). "
        f"Command: `.venv/bin/python benchmarks/search_efficiency.py`. Results: `{path.name}`.\n\n"
        + markdown_table(
            [
                "noise (pt)",
                "method",
                "feasible",
                "≤0.02",
                "dist mean",
                "dist p90",
                "regret mean",
                "regret p90",
                "evals",
            ],
            rows,
        )
    )
    if not args.quick:
        update_docs("search_efficiency", "Sparsity search efficiency (budget 10)", body)
    print(body)


if __name__ == "__main__":
    main()
