"""Does a short distillation recover SmolLM2-135M after structural pruning? Measured.

Key/value groups pruned at 25 % (``HeadPrune(0.25)``, ranked across layers, as the
``heads-25`` row of ``benchmarks/llm.py``), then the same number of AdamW steps on
KJV windows three ways: none, plain fine-tuning (next-token loss), and distillation
from the uncompressed model (its next-token distributions, ``Distillation(weight=1)``).
Held-out WEB perplexity and last-word accuracy, as in ``benchmarks/llm.py``.

    .venv/bin/python benchmarks/llm_distill.py            # 40 steps each (~15 min)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from llm import model_and_text  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--window", type=int, default=256)
    args = parser.parse_args()

    from _report import markdown_table, update_docs, write_results

    import condensa
    from condensa import schemes
    from condensa.optim import FineTune
    from condensa.optim.causal_lm import CausalLMTrainer
    from condensa.optim.distill import Distillation

    torch.set_num_threads(2)
    model, tokenizer, kjv, web = model_and_text()
    trainer = CausalLMTrainer(
        tokenizer, kjv[:8000], web[-8000:], window=args.window, batch_size=2, lr=args.lr,
        eval_tokens=4096, last_words=100,
    )  # fmt: skip
    scheme = schemes.HeadPrune(0.25)
    fp32 = trainer.evaluate(model)
    arms = {
        "no recovery": None,
        "fine-tuning": FineTune(
            trainer, steps=args.steps, lr_rewinding=True, metric="perplexity"
        ),
        "distillation": FineTune(
            trainer, steps=args.steps, lr_rewinding=True, metric="perplexity",
            distill=Distillation(weight=1.0),
        ),
    }  # fmt: skip
    rows, records = [], []
    for label, method in arms.items():
        start = time.perf_counter()
        torch.manual_seed(0)
        pruned = (
            condensa.compress(model, scheme)
            if method is None
            else method.compress(model, scheme).model
        )
        wall = time.perf_counter() - start
        metrics = trainer.evaluate(pruned)
        records.append({"recovery": label, **metrics, "wall_s": wall})
        rows.append(
            [label, f"{metrics['perplexity']:.2f}", f"{metrics['last_word']:.2f}", f"{wall:.0f}"]
        )
        print(rows[-1], flush=True)
    path = write_results(
        "llm_distill",
        {"steps": args.steps, "lr": args.lr, "window": args.window, "fp32": fp32,
         "results": records},
    )  # fmt: skip
    body = (
        f"SmolLM2-135M, 25 % of its key/value groups pruned (with their query heads); "
        f"{args.steps} AdamW steps (lr {args.lr:g}, 2 windows of {args.window} KJV tokens "
        f"per step, masks held) of each recovery. fp32: WEB perplexity {fp32['perplexity']:.2f}, "
        f"last word {fp32['last_word']:.2f}. Command: `.venv/bin/python benchmarks/"
        f"llm_distill.py`. Results: `{path.name}`.\n\n"
        + markdown_table(["recovery", "WEB ppl", "last word", "wall s"], rows)
    )
    update_docs("llm_distill", "Decoder LLM: recovery after head pruning (SmolLM2-135M)", body)
    print(body)


if __name__ == "__main__":
    main()
