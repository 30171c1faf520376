"""A custom scheme in plain Python: loops and conditionals over the model's layers.

The rule, as a practitioner might state it:
- never touch the first and the last layer (they are small and sensitive);
- convolutions lose whole filters, linear layers lose individual weights;
- larger layers get more sparsity than smaller ones.

Run: python examples/custom_scheme.py
"""

from __future__ import annotations

import math

import torch
from torch import nn

import condensa
from condensa.operators import Channels, Magnitude
from condensa.schemes import Plan, Scheme, Selection


class SizeAwarePrune(Scheme):
    """Filters of convs, weights of linears, skipping the first and last layer.

    A layer with ``n`` weights gets ``sparsity = base + slope * log10(n / smallest)``,
    capped at ``cap``, so larger layers are pruned harder.
    """

    def __init__(self, base: float = 0.3, slope: float = 0.2, cap: float = 0.95) -> None:
        self.base, self.slope, self.cap = base, slope, cap

    def plan(self, model: nn.Module, weights=None) -> Plan:
        targets = Selection().targets(model)  # Linear and Conv layers, in order
        middle = targets[1:-1]  # skip the first and the last layer
        smallest = min(t.weight.numel() for t in middle)
        plan = Plan()
        for t in middle:
            sparsity = min(
                self.cap, self.base + self.slope * math.log10(t.weight.numel() / smallest)
            )
            if isinstance(t.module, nn.Conv2d):
                plan.add(t, Channels(sparsity, align=4))
            else:
                plan.add(t, Magnitude(sparsity))
        return plan


def main() -> None:
    torch.manual_seed(0)
    model = condensa.zoo.DigitsCNN()
    small = condensa.compress(model, SizeAwarePrune())
    print(condensa.stats(small, input_size=(1, 1, 8, 8)))


if __name__ == "__main__":
    main()
