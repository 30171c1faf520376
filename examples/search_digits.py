"""Infer the sparsity of a filter-pruning strategy under a 1-point accuracy budget.

A small CNN is trained on scikit-learn's digits; `condensa.search_compression` then
searches the FilterPrune sparsity that minimizes MACs while test accuracy stays within
one point of the baseline, fine-tuning each candidate with its masks, and thins and
saves the winner. Run: python examples/search_digits.py [--budget 6]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import condensa
from condensa import schemes
from condensa.data import load_digits
from condensa.objectives import Macs
from condensa.optim import SupervisedTrainer
from condensa.search import plot_search


def main(budget: int = 6, out: Path | None = None) -> condensa.CompressionSearch:
    torch.manual_seed(0)
    train, test = load_digits()
    loader = DataLoader(train, batch_size=64, shuffle=True)
    trainer = SupervisedTrainer(
        loader, DataLoader(test, batch_size=512), lr=3e-3, schedule="cosine"
    )
    model = condensa.zoo.DigitsCNN()
    trainer.train(model, 15 * len(loader))
    example = test.tensors[0][:1]

    outcome = condensa.search_compression(
        model,
        lambda s: schemes.FilterPrune(s),
        trainer=trainer,
        objective=Macs(),
        example_inputs=example,
        method="finetune",
        method_options={"steps": 3 * len(loader)},
        max_drop=0.01,
        budget=budget,
        seed=0,
        bounds=(0.0, 0.9),
    )
    print(outcome.search.summary())
    out = out or Path(tempfile.mkdtemp())
    if outcome.model is not None:
        thinned = condensa.thin(outcome.model, example)
        condensa.save(outcome.model, out / "digits.condensa", zoo="digits_cnn")
        params = sum(p.numel() for p in thinned.parameters())
        dense = sum(p.numel() for p in model.parameters())
        print(f"thinned model: {params:,} parameters (dense {dense:,})")
    print("plot:", plot_search(outcome.search, out / "search.png"))
    return outcome


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=int, default=6)
    main(parser.parse_args().budget)
