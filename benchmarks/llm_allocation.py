"""Per-block sparsity on SmolLM2-135M at one average sparsity: uniform, OWL, searched.

Wanda prunes the block Linears at an average of ``--sparsity``; only how that average
is spread over the 30 blocks differs. The search (:func:`condensa.layerwise.
search_allocation`) minimizes perplexity on a *validation* text (KJV verses 8,000 to
12,000: neither calibration, which is drawn from the first 8,000, nor the held-out
verses); the table reports the held-out WEB perplexity and last-word accuracy, as
``benchmarks/llm.py`` does. Needs the same installs as that script.

    .venv/bin/python benchmarks/llm_allocation.py                # 60 %, 12 trials (~15 min)
    .venv/bin/python benchmarks/llm_allocation.py --sparsity 0.5 --budget 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from llm import LINEARS, model_and_text, trainers  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.6)
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--eval-tokens", type=int, default=4096)
    args = parser.parse_args()

    from _report import markdown_table, update_docs, write_results

    from condensa import schemes
    from condensa.layerwise import block_allocation, block_outliers, search_allocation
    from condensa.optim.oneshot import Wanda

    torch.set_num_threads(2)
    model, tokenizer, kjv, web = model_and_text()
    held_out, validation = trainers(tokenizer, kjv, web, args.eval_tokens)
    batches = held_out.calibration_inputs(args.samples)
    start = time.perf_counter()
    outliers = block_outliers(model, batches)
    outlier_s = time.perf_counter() - start
    kept = {}  # per-block sparsities (rounded) -> compressed model, for the held-out pass

    def compress(sparsities):
        allocation = block_allocation(model, sparsities)
        scheme = schemes.Prune(args.sparsity, allocation=allocation, **LINEARS)
        return Wanda(samples=args.samples).compress(model, scheme, batches).model

    trials = []

    def key_of(sparsities):
        return tuple(round(s, 6) for s in sparsities)

    def evaluate(sparsities):
        began = time.perf_counter()
        compressed = compress(sparsities)
        ppl = validation.evaluate(compressed)["perplexity"]
        trials.append({"sparsities": sparsities, "validation_ppl": ppl})
        kept[key_of(sparsities)] = compressed
        best = min(trials, key=lambda t: t["validation_ppl"])
        wanted = {key_of(t["sparsities"]) for t in [*trials[:2], best]}
        for key in set(kept) - wanted:  # hold uniform, OWL and the best so far only
            del kept[key]
        print(
            f"trial {len(trials)}: validation ppl {ppl:.2f} ({time.perf_counter() - began:.0f}s) "
            f"sparsities {min(sparsities):.2f}..{max(sparsities):.2f}",
            flush=True,
        )
        return ppl

    found = search_allocation(evaluate, outliers, args.sparsity, budget=args.budget)
    search_s = time.perf_counter() - start
    rows, records = [], []
    for label, point in (("uniform", found.uniform), ("OWL", found.owl), ("searched", found.best)):
        sparsities = found.sparsities(point)
        model_ = kept[key_of(sparsities)]
        metrics = held_out.evaluate(model_)
        records.append(
            {
                "allocation": label,
                "slope": point.x[0],
                "outlier_weight": point.x[1],
                "validation_ppl": point.value,
                **metrics,
                "sparsities": sparsities,
            }
        )
        rows.append(
            [
                label,
                f"{point.x[0]:+.3f}",
                f"{point.x[1]:.3f}",
                f"{min(sparsities):.2f}-{max(sparsities):.2f}",
                f"{point.value:.2f}",
                f"{metrics['perplexity']:.2f}",
                f"{metrics['last_word']:.2f}",
            ]
        )
        print(rows[-1], flush=True)
    uniform, owl, searched = records
    verdict = (
        "met"
        if searched["perplexity"] < min(uniform["perplexity"], owl["perplexity"])
        else "MISSED"
    )
    target = (
        f"searched allocation's held-out perplexity {searched['perplexity']:.2f} against "
        f"uniform {uniform['perplexity']:.2f} and OWL {owl['perplexity']:.2f} at the same "
        f"average sparsity (target: below both): {verdict}"
    )
    path = write_results(
        "llm_allocation",
        {
            "sparsity": args.sparsity,
            "budget": args.budget,
            "samples": args.samples,
            "outliers": outliers,
            "outlier_s": outlier_s,
            "search_s": search_s,
            "results": records,
            "trials": trials,
            "target": target,
        },
    )
    body = (
        f"Wanda at an average of {args.sparsity:.0%} over SmolLM2-135M's block Linears, "
        f"{args.samples} calibration windows of 512 KJV tokens; the allocation search ran "
        f"{args.budget} compressions ({search_s / 60:.0f} min in all, outlier ratios "
        f"{outlier_s:.0f} s), scored on KJV verses 8,000-12,000 (validation); WEB columns "
        "are held out (as in the table above). Slope: later blocks pruned more when "
        "positive; outlier weight: OWL's 2 x lam (0.16 is OWL's default lam 0.08, M = 5). "
        f"Command: `.venv/bin/python benchmarks/llm_allocation.py`. Results: `{path.name}`.\n\n"
        + markdown_table(
            [
                "allocation",
                "slope",
                "outlier weight",
                "block sparsity",
                "validation ppl",
                "WEB ppl",
                "last word",
            ],
            rows,
        )
        + f"\n\n- {target}"
    )
    update_docs("llm_allocation", "Decoder LLM: per-block sparsity (SmolLM2-135M)", body)
    print(body)


if __name__ == "__main__":
    main()
