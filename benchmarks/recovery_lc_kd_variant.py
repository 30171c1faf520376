"""Experiment for docs/benchmarks.md: L-C distilling only in its final fine-tuning of θ.

Does distillation hurt L-C by opposing the penalty in the L steps, or by distilling the
sparse θ? This runs L-C without distillation in the L steps and with it (T = 4, weight
0.9) in the final fine-tuning, on the recovery benchmark's task, baseline and seeds.

Run: .venv/bin/python benchmarks/recovery_lc_kd_variant.py lenet300100 0.98
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch
from recovery import baseline, task
from torch import nn

from condensa.optim import LC, Distillation


class PolishDistillLC(LC):
    """L-C whose L steps learn from the labels only; the final fine-tuning distills."""

    def __init__(self, *args: Any, teacher: nn.Module, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher

    def _polish(self, model, score, iteration, history, distiller):  # type: ignore[no-untyped-def]
        kd = Distillation().bind(self.teacher)
        return super()._polish(model, score, iteration, history, kd)


def main() -> None:
    name, sparsity = sys.argv[1], float(sys.argv[2])
    torch.set_num_threads(1)
    t, trainer, tester, make = task(name)
    model = baseline(name, t, trainer, cache=True)
    for seed in (0, 1, 2):
        lc = PolishDistillLC(trainer, iterations=10, budget=t.budget, seed=seed, teacher=model)
        start = time.perf_counter()
        result = lc.compress(model, make(model)(sparsity))
        accuracy = tester.evaluate(result.model)[t.metric]
        print(f"{t.label} s={sparsity} seed={seed}: test {accuracy:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
