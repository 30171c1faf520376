"""Word-level LSTM language model on the King James Bible, compressed by L-C.

Baseline perplexity, then Compose([Prune(s), Quantize("float16")]) by L-C at two
sparsities: validation/test perplexity and the memory compression ratio (dense
float32 bytes over the real saved file).

Run: .venv/bin/python benchmarks/lstm_lm.py [--quick]
Needs: apt-get install -y bible-kjv
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _report import markdown_table, update_docs, write_results

import condensa
from condensa import schemes
from condensa.data import batchify, kjv_text, load_corpus
from condensa.optim import LC, LanguageModelTrainer
from condensa.zoo import LSTMLanguageModel

TYPES = ["Embedding", "LSTM", "Linear"]  # every weight matrix of the language model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.8, 0.9])
    parser.add_argument("--baseline-steps", type=int, default=1500)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.baseline_steps, args.iterations, args.steps, args.sparsities = 50, 1, 10, [0.8]
    torch.set_num_threads(args.threads)
    corpus = load_corpus(kjv_text(), min_count=3)
    train, valid, test = (
        batchify(corpus.train, 20),
        batchify(corpus.valid, 10),
        batchify(corpus.test, 10),
    )
    trainer = LanguageModelTrainer(train, valid, bptt=35, lr=20.0, schedule="cosine")
    tester = LanguageModelTrainer(train, test, bptt=35)
    torch.manual_seed(0)
    model = LSTMLanguageModel(len(corpus.vocab), embedding_dim=200, hidden_dim=200, dropout=0.2)
    start = time.perf_counter()
    trainer.train(model, args.baseline_steps)
    base_time = time.perf_counter() - start
    base = {
        "valid": trainer.evaluate(model)["perplexity"],
        "test": tester.evaluate(model)["perplexity"],
    }
    dense_bytes = condensa.stats(model).dense_bytes
    rows = [
        ["baseline", "-", f"{base['valid']:.1f}", f"{base['test']:.1f}", "1.0x", f"{base_time:.0f}"]
    ]
    records = [{"method": "baseline", "sparsity": 0.0, **base, "wall_s": base_time}]
    for s in args.sparsities:
        scheme = schemes.Compose(
            [schemes.Prune(s, types=TYPES), schemes.Quantize("float16", types=TYPES)]
        )
        start = time.perf_counter()
        result = LC(
            trainer,
            iterations=args.iterations,
            steps=args.steps,
            mu_init=1e-2,
            mu_multiplier=1.4,
            metric="perplexity",
            lr_scale=0.25,
        ).compress(model, scheme)
        wall = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as folder:
            file_bytes = condensa.save(result.model, Path(folder) / "m.condensa").stat().st_size
        ppl = {
            "valid": trainer.evaluate(result.model)["perplexity"],
            "test": tester.evaluate(result.model)["perplexity"],
        }
        ratio = dense_bytes / file_bytes
        rows.append(
            [
                f"L-C Prune({s}) + fp16",
                s,
                f"{ppl['valid']:.1f}",
                f"{ppl['test']:.1f}",
                f"{ratio:.1f}x",
                f"{wall:.0f}",
            ]
        )
        records.append(
            {
                "method": "lc",
                "sparsity": s,
                **ppl,
                "file_bytes": file_bytes,
                "dense_bytes": dense_bytes,
                "compression_ratio": ratio,
                "wall_s": wall,
                "history": result.history,
            }
        )
        print(rows[-1], flush=True)
    settings = {
        "vocab": len(corpus.vocab),
        "train_tokens": corpus.train.numel(),
        "baseline_steps": args.baseline_steps,
        "lc_iterations": args.iterations,
        "steps_per_l_step": args.steps,
        "bptt": 35,
        "batch": 20,
        "model": "2-layer LSTM 200/200, untied embeddings, dropout 0.2",
        "optimizer": "SGD lr 20 (L steps: lr 5), cosine within each call, clip 0.25",
    }
    path = write_results("lstm_lm", {"settings": settings, "results": records})
    body = (
        f"King James Bible (bible-kjv; {corpus.train.numel():,} training tokens, vocabulary "
        f"{len(corpus.vocab):,} with words seen < 3 times as <unk>, 90/5/5 split), 2-layer LSTM "
        f"200/200 (embedding, LSTM and decoder weights all compressed); baseline {args.baseline_steps} BPTT steps (35 x 20). "
        f"L-C: {args.iterations} L steps of {args.steps}, μ0 = 1e-2, a = 1.4, best validation "
        "perplexity kept. Compression ratio = dense float32 bytes / real saved file. "
        f"Command: `.venv/bin/python benchmarks/lstm_lm.py`. Results: `{path.name}`.\n\n"
        + markdown_table(
            ["model", "sparsity", "valid ppl", "test ppl", "compression", "wall s"], rows
        )
    )
    if not args.quick:
        update_docs("lstm_lm", "LSTM language model on the KJV (L-C, prune + float16)", body)
    print(body)


if __name__ == "__main__":
    main()
