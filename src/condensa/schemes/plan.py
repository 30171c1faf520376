"""A scheme resolved against one model: target FQN -> configured operator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from condensa.errors import ConfigError
from condensa.operators import Chain, Compressed, Operator, flatten
from condensa.schemes.selection import Target


@dataclass(frozen=True)
class PlanEntry:
    """One target and the operator (possibly a chain) configured for it."""

    target: Target
    operator: Operator


class Plan:
    """An ordered mapping from target FQN to a configured operator.

    Adding a second operator to the same target chains it after the first (π left to
    right). A plan is pure data: applying it to a model is
    :func:`condensa.masking.apply_plan`'s job.

    Example:
        >>> plan = Plan()
        >>> plan.add(target, Magnitude(0.5))  # doctest: +SKIP

    """

    def __init__(self) -> None:
        self._entries: dict[str, PlanEntry] = {}

    def add(self, target: Target, operator: Operator) -> None:
        """Compress ``target`` with ``operator`` (chained after any operator already there)."""
        if not isinstance(operator, Operator):
            raise ConfigError(f"expected an Operator for {target.fqn!r}, got {operator!r}")
        current = self._entries.get(target.fqn)
        if current is not None:
            operator = Chain(flatten(current.operator) + flatten(operator))
        self._entries[target.fqn] = PlanEntry(target=target, operator=operator)

    def merge(self, other: Plan) -> Plan:
        """A new plan: this one's operators, then ``other``'s, per target."""
        merged = Plan()
        for entry in (*self, *other):
            merged.add(entry.target, entry.operator)
        return merged

    def __iter__(self) -> Iterator[PlanEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, fqn: object) -> bool:
        return fqn in self._entries

    def __getitem__(self, fqn: str) -> PlanEntry:
        return self._entries[fqn]

    @property
    def fqns(self) -> list[str]:
        """Target FQNs in plan order."""
        return list(self._entries)

    def weights(self) -> dict[str, torch.Tensor]:
        """The current forward value of every target (detached)."""
        return {e.target.fqn: e.target.weight.detach() for e in self}

    def check(self, weights: Mapping[str, torch.Tensor] | None = None) -> None:
        """Run every operator's checks; raises before anything is mutated."""
        values = self.weights() if weights is None else weights
        for entry in self:
            entry.operator.check(values[entry.target.fqn], name=entry.target.fqn)

    def compress(self, weights: Mapping[str, torch.Tensor] | None = None) -> dict[str, Compressed]:
        """π for every target; ``weights`` defaults to the targets' current values."""
        values = self.weights() if weights is None else weights
        self.check(values)
        return {e.target.fqn: e.operator.compress(values[e.target.fqn]) for e in self}

    def project(self, weights: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Δ(π(w)) for every target."""
        values = self.weights() if weights is None else weights
        self.check(values)
        return {e.target.fqn: e.operator.project(values[e.target.fqn]) for e in self}

    def __repr__(self) -> str:
        lines = [f"  {e.target.fqn}: {e.operator!r}" for e in self]
        return "Plan(\n" + "\n".join(lines) + "\n)"
