"""Accuracy recovery: DC + fine-tuning (LR rewinding), GMP and L-C, with and without distillation.

Each model is trained once to a baseline (cached in ``benchmarks/.cache``), then
compressed by every method at every sparsity with the same number of mini-batch
steps, for several seeds (the seed drives data order and training). Model selection
uses a validation split carved out of the training set; the tables report the test
split, mean ± std over seeds.

Results accumulate in ``benchmarks/results/recovery.json`` keyed by (model, sparsity,
method, distillation, seed): run one model at a time, the docs table shows all.

Run: .venv/bin/python benchmarks/recovery.py [--models lenet300100 lenet5] [--seeds 0 1 2]
Needs: apt-get install -y dataset-fashion-mnist (LeNets, ResNet-20), bible-kjv (LSTM)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _report import RESULTS, ROOT, environment, markdown_table, update_docs
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import condensa
from condensa import schemes, zoo
from condensa.api import grouped
from condensa.data import load_mnist
from condensa.optim import GMP, LC, Distillation, FineTune, LanguageModelTrainer, SupervisedTrainer

CACHE = ROOT / "benchmarks" / ".cache"
NAME = "recovery"
METHODS = ("DC+FT", "GMP", "L-C")


@dataclass
class Task:
    """One model's setting: data, trainer, baseline recipe, scheme and budget."""

    label: str
    build: Callable[[], nn.Module]
    scheme: Callable[[float], str]  # scheme description for the table
    sparsities: list[float]
    budget: int
    baseline_steps: int
    metric: str = "accuracy"


def fashion(pad: int | None) -> tuple[SupervisedTrainer, SupervisedTrainer, torch.Tensor]:
    """(trainer on the validation split, tester on the test split, an example batch)."""
    train_full, test = load_mnist(kind="fashion", pad_to=pad)
    x, y = train_full.tensors
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train = TensorDataset(x[order[5000:]], y[order[5000:]])
    valid = TensorDataset(x[order[:5000]], y[order[:5000]])
    loader = DataLoader(train, batch_size=64, shuffle=True)
    trainer = SupervisedTrainer(loader, DataLoader(valid, batch_size=1000), schedule="cosine")
    tester = SupervisedTrainer(loader, DataLoader(test, batch_size=1000))
    return trainer, tester, x[:8]


def kjv() -> tuple[LanguageModelTrainer, LanguageModelTrainer, int]:
    from condensa.data import batchify, kjv_text, load_corpus

    corpus = load_corpus(kjv_text(), min_count=3)
    train = batchify(corpus.train, 20)
    trainer = LanguageModelTrainer(train, batchify(corpus.valid, 10), lr=20.0, schedule="cosine")
    tester = LanguageModelTrainer(train, batchify(corpus.test, 10))
    return trainer, tester, len(corpus.vocab)


def task(name: str) -> tuple[Task, Any, Any, Callable[[nn.Module], Callable[[float], Any]]]:
    """The task, its trainer and tester, and ``model -> (sparsity -> scheme)``."""
    if name in ("lenet300100", "lenet5"):
        trainer, tester, _ = fashion(None)
        label = {"lenet300100": "LeNet-300-100", "lenet5": "LeNet-5"}[name]
        budget = 6000 if name == "lenet300100" else 3000
        t = Task(label, lambda: zoo.get(name), lambda s: f"Prune({s})", [0.9, 0.95, 0.98],
                 budget, 3440)  # fmt: skip
        return t, trainer, tester, lambda model: schemes.Prune
    if name == "resnet20":
        trainer, tester, example = fashion(32)
        t = Task("ResNet-20", lambda: zoo.get("resnet20", in_channels=1),
                 lambda s: f"FilterPrune({s}), groups", [0.3, 0.5, 0.7], 3000, 3440)  # fmt: skip
        return t, trainer, tester, lambda model: grouped(model, schemes.FilterPrune, example)
    if name == "lstm":
        lm_trainer, lm_tester, vocab = kjv()
        t = Task("LSTM (KJV)",
                 lambda: zoo.get("lstm_lm", vocab_size=vocab, embedding_dim=200, hidden_dim=200,
                                 dropout=0.2),
                 lambda s: f"Prune({s}) + float16", [0.8, 0.9], 1500, 1500, "perplexity")  # fmt: skip
        types = ["Embedding", "LSTM", "Linear"]
        return (
            t,
            lm_trainer,
            lm_tester,
            lambda model: (
                lambda s: schemes.Compose(
                    [schemes.Prune(s, types=types), schemes.Quantize("float16", types=types)]
                )
            ),
        )
    raise SystemExit(f"unknown model {name!r}; valid: lenet300100, lenet5, resnet20, lstm")


def baseline(name: str, t: Task, trainer: Any, cache: bool) -> nn.Module:
    """The trained uncompressed model (trained once with seed 0, then read from the cache)."""
    torch.manual_seed(0)
    model = t.build()
    path = CACHE / f"{NAME}-{name}.pt"
    if not cache:
        trainer.train(model, t.baseline_steps)
        return model
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model
    trainer.train(model, t.baseline_steps)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def method(kind: str, trainer: Any, budget: int, distill: bool, seed: int, metric: str) -> Any:
    spec = Distillation() if distill else None
    if kind == "DC+FT":
        return FineTune(trainer, steps=budget, lr_rewinding=True, evaluations=5, distill=spec,
                        metric=metric, seed=seed)  # fmt: skip
    if kind == "GMP":
        return GMP(trainer, steps=budget, evaluations=5, distill=spec, metric=metric, seed=seed)
    return LC(trainer, iterations=10, budget=budget, distill=spec, metric=metric, seed=seed)


def load_records() -> list[dict[str, Any]]:
    path = RESULTS / f"{NAME}.json"
    return json.loads(path.read_text())["results"] if path.is_file() else []


def key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["model"], r["sparsity"], r["method"], r["distill"], r["seed"])


def save_records(records: list[dict[str, Any]], settings: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{NAME}.json"
    payload = {"environment": environment(), "settings": settings, "results": records}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def summary(values: list[float], percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}" + ("" if len(values) == 3 else f" (n={len(values)})")


def table(records: list[dict[str, Any]]) -> str:
    """One row per (model, sparsity): every method's mean ± std, the best in bold."""
    groups: dict[tuple[Any, ...], dict[str, list[float]]] = {}
    meta: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        row = (r["model"], r["sparsity"])
        column = r["method"] + (" +KD" if r["distill"] else "")
        groups.setdefault(row, {}).setdefault(column, []).append(r["test"])
        meta[row] = r
    columns = [m + kd for m in METHODS for kd in ("", " +KD")]
    rows = []
    order = ["LeNet-300-100", "LeNet-5", "ResNet-20", "LSTM (KJV)"]
    for row, cells in sorted(
        groups.items(), key=lambda item: (order.index(item[0][0]), item[0][1])
    ):
        lower = meta[row]["metric"] != "accuracy"
        means = {c: statistics.fmean(v) for c, v in cells.items()}
        best = (min if lower else max)(means, key=lambda c: means[c])
        text = []
        for c in columns:
            if c not in cells:
                text.append("-")
                continue
            cell = summary(cells[c], percent=not lower)
            text.append(f"**{cell}**" if c == best else cell)
        base = meta[row]["baseline"] * (1 if lower else 100)
        rows.append([row[0], meta[row]["scheme"], meta[row]["budget"], f"{base:.2f}", *text])
    return markdown_table(["model", "scheme", "steps", "baseline", *columns], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lenet300100", "lenet5"])
    parser.add_argument("--sparsities", type=float, nargs="+", help="default: per model")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--distill", nargs="+", default=["no", "yes"], choices=["no", "yes"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, help="steps per row (default: per model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny budget; writes nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = [] if args.quick else load_records()
    done = {key(r) for r in records}
    settings = {
        "optimizer": "Adam lr 1e-3 (LSTM: SGD lr 20), batch 64, cosine within each train call",
        "DC+FT": "FineTune(steps=budget, lr_rewinding=True, evaluations=5)",
        "GMP": "GMP(steps=budget, start=0, end=0.7, 20 mask updates, evaluations=5)",
        "L-C": "LC(iterations=10, budget=budget): adaptive mu from 1e-3, 20% final fine-tuning",
        "distillation": "Distillation(): temperature 4, weight 0.9, from the uncompressed model",
        "validation": "5,000 training images held out for model selection; test split reported",
    }
    for name in args.models:
        t, trainer, tester, make = task(name)
        if args.quick:
            t.baseline_steps, t.budget = 30, 40
        model = baseline(name, t, trainer, cache=not args.quick)
        base = tester.evaluate(model)[t.metric]
        stale = {key(r) for r in records if r["model"] == t.label and r["baseline"] != base}
        if stale:  # a retrained baseline (another machine): those rows are rerun, not mixed
            print(f"{t.label}: {len(stale)} results from another baseline will be rerun")
        factory = make(model)
        budget = args.budget or t.budget
        for s in args.sparsities or t.sparsities:
            for kind in args.methods:
                for distill in (d == "yes" for d in args.distill):
                    for seed in args.seeds:
                        record = {"model": t.label, "sparsity": s, "method": kind,
                                  "distill": distill, "seed": seed}  # fmt: skip
                        if key(record) in done and key(record) not in stale:
                            continue
                        start = time.perf_counter()
                        compressor = method(kind, trainer, budget, distill, seed, t.metric)
                        result = compressor.compress(model, factory(s))
                        wall = time.perf_counter() - start
                        test = tester.evaluate(result.model)[t.metric]
                        record.update(
                            scheme=t.scheme(s), budget=budget, metric=t.metric, baseline=base,
                            test=test, validation=result.best_score, wall_s=wall,
                            achieved_sparsity=condensa.stats(result.model).sparsity,
                            history=result.history,
                        )  # fmt: skip
                        print(f"{t.label} s={s} {kind}{' +KD' if distill else ''} seed={seed}: "
                              f"test {t.metric} {test:.4f} ({wall:.0f} s)", flush=True)  # fmt: skip
                        if not args.quick:
                            records = [r for r in records if key(r) != key(record)] + [record]
                            save_records(records, settings)
    if args.quick:
        return
    body = (
        "Fashion-MNIST (55k train / 5k validation / 10k test); KJV LSTM: perplexity, lower "
        "is better. Every method of a row gets the same number of mini-batch steps "
        "(`steps`); test accuracy in % (perplexity for the LSTM), mean ± std over seeds "
        "0, 1, 2 unless n says otherwise; the best mean in bold. DC+FT: direct compression "
        "then fine-tuning with LR rewinding, best of 5 validation checks. GMP: cubic "
        "sparsity ramp over the first 70% of the steps, 20 mask updates, then fine-tuning. "
        "L-C: 10 iterations, adaptive μ, the last 20% of the steps fine-tune θ. +KD: "
        "distillation from the uncompressed model (T = 4, weight 0.9). 2 CPU threads. "
        f"Command: `.venv/bin/python benchmarks/recovery.py --models ...`. "
        f"Results: `{NAME}.json`.\n\n" + table(records)
    )
    update_docs(NAME, "Accuracy recovery: DC + FT vs GMP vs L-C, with distillation", body)
    print(body)


if __name__ == "__main__":
    main()
