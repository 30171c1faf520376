"""A chain of operators on one tensor: π left to right, Δ right to left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from condensa.errors import ConfigError
from condensa.operators.base import ChainedTensor, Compressed, Operator


@dataclass(frozen=True)
class Chain(Operator):
    """Apply ``operators`` in order; each sees the decompressed output of the previous.

    ``compress`` returns the parts in order; ``decompress`` undoes them right to left,
    so ``Chain([Magnitude(0.5), Cast("float16")]).project(w)`` equals the float16
    round trip of the pruned ``w``.
    """

    operators: tuple[Operator, ...] = ()
    name: ClassVar[str] = "chain"

    def __post_init__(self) -> None:
        ops = tuple(self.operators)
        if not ops or not all(isinstance(op, Operator) for op in ops):
            raise ConfigError(f"Chain needs a non-empty sequence of operators, got {ops!r}")
        object.__setattr__(self, "operators", ops)

    def check(self, weight: torch.Tensor, *, name: str = "weight") -> None:
        """Check every operator of the chain."""
        for op in self.operators:
            op.check(weight, name=name)

    def compress(self, weight: torch.Tensor) -> ChainedTensor:
        """π of each operator in turn on the previous one's Δ."""
        parts: list[Compressed] = []
        current = weight
        for op in self.operators:
            part = op.compress(current)
            parts.append(part)
            current = op.decompress(part)
        return ChainedTensor(parts=tuple(parts))

    def decompress(self, compressed: Compressed) -> torch.Tensor:
        """Δ of the last part: earlier parts are already folded into it by π."""
        if not isinstance(compressed, ChainedTensor) or len(compressed.parts) != len(
            self.operators
        ):
            raise TypeError(f"Chain cannot decompress {type(compressed).__name__}")
        return self.operators[-1].decompress(compressed.parts[-1])

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "chain", "operators": [...]}``."""
        return {"type": self.name, "operators": [op.to_dict() for op in self.operators]}


def flatten(operator: Operator) -> tuple[Operator, ...]:
    """The operators of a (possibly nested) chain, in application order."""
    if isinstance(operator, Chain):
        return tuple(op for inner in operator.operators for op in flatten(inner))
    return (operator,)
