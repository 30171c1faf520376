"""The scheme protocol and the one generic scheme every built-in is made of."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.functional import check_sparsity
from condensa.operators import Operator, PruneOperator
from condensa.plain import to_plain
from condensa.schemes.allocation import AllocationSpec, allocate, check_allocation
from condensa.schemes.plan import Plan
from condensa.schemes.selection import Selection


class Scheme(ABC):
    """Network-level compression intent, resolved against a model by :meth:`plan`.

    To write your own scheme, subclass and implement :meth:`plan`: pick targets with a
    :class:`~condensa.schemes.Selection` (or any Python logic over
    ``model.named_modules()``), then ``plan.add(target, operator)`` for each. Planning
    must not modify the model. Implement :meth:`to_dict` too if the scheme should be
    saved in run configs.
    """

    @abstractmethod
    def plan(self, model: nn.Module, weights: Mapping[str, torch.Tensor] | None = None) -> Plan:
        """Resolve against ``model``.

        Args:
            model: the model whose modules are selected.
            weights: optional ``{fqn: tensor}`` overriding the targets' current values
                for ranking (the L-C C step ranks ``w - λ/μ``, not ``w``).

        Returns:
            The plan; nothing in ``model`` is modified.

        """

    def to_dict(self) -> dict[str, Any]:
        """Plain-data spec, inverse of :func:`condensa.schemes.from_dict`."""
        raise ConfigError(
            f"{type(self).__name__} cannot be turned into a spec; implement to_dict() to save it"
        )


class OperatorScheme(Scheme):
    """One operator over a selection of layers, with a sparsity allocation.

    Every built-in scheme is an ``OperatorScheme``: the operator says *how* one tensor
    is compressed; the selection says *which* tensors; the allocation says *how
    much* each gets when the operator prunes.

    Args:
        operator: the prototype operator; pruning operators are re-configured with each
            target's allocated sparsity.
        sparsity: the scheme's sparsity (ignored for non-pruning operators).
        selection: which targets.
        allocation: ``"global"``, ``"uniform"`` or ``{module regex: sparsity}``.
        options: the user's keyword arguments, kept for :meth:`to_dict`.

    """

    def __init__(
        self,
        operator: Operator,
        *,
        selection: Selection,
        sparsity: float | None = None,
        allocation: AllocationSpec = "global",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.operator = operator
        self.selection = selection
        self.sparsity = None if sparsity is None else check_sparsity(sparsity)
        if isinstance(operator, PruneOperator) and self.sparsity is None:
            raise ConfigError(f"{type(self).__name__} needs a sparsity in [0, 1)")
        self.allocation = check_allocation(allocation)
        self._options = dict(options or {})

    def plan(self, model: nn.Module, weights: Mapping[str, torch.Tensor] | None = None) -> Plan:
        """Select targets, check them, allocate sparsity, configure one operator each."""
        targets = self.selection.targets(model)
        values = {t.fqn: t.weight.detach() for t in targets}
        if weights is not None:
            values.update({k: v for k, v in weights.items() if k in values})
        for t in targets:
            self.operator.check(values[t.fqn], name=t.fqn)
        plan = Plan()
        if isinstance(self.operator, PruneOperator):
            assert self.sparsity is not None  # guaranteed by __init__
            allocated = allocate(targets, values, self.operator, self.sparsity, self.allocation)
            for t in targets:
                # the configured operator is checked again when the plan is applied
                plan.add(t, self.operator.with_sparsity(allocated[t.fqn]))
        else:
            for t in targets:
                plan.add(t, self.operator)
        return plan

    def to_dict(self) -> dict[str, Any]:
        """``{"type": class name, **the options given}``."""
        return {"type": type(self).__name__, **to_plain(self._options)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, OperatorScheme)
            and type(self) is type(other)
            and (self.to_dict() == other.to_dict())
        )

    __hash__ = None  # type: ignore[assignment]
