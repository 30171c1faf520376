"""The built-in schemes: each is one operator over a selection, with an allocation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.operators import (
    NM,
    OPERATORS,
    Affine,
    Block,
    Cast,
    Chain,
    ChannelMask,
    Channels,
    GroupAffine,
    Magnitude,
    Operator,
    PruneOperator,
)
from condensa.schemes.allocation import AllocationSpec
from condensa.schemes.base import OperatorScheme, Scheme
from condensa.schemes.groups import ChannelGroup, plan_groups
from condensa.schemes.plan import Plan
from condensa.schemes.selection import CONV, LINEAR_AND_CONV, Selection

Types = Sequence[type[nn.Module] | str] | None
Patterns = Sequence[str] | str | None


def _given(**options: Any) -> dict[str, Any]:
    """The options a user actually set (``None`` means "default")."""
    return {k: v for k, v in options.items() if v is not None}


class Prune(OperatorScheme):
    """Unstructured magnitude pruning; by default one global ranking over all layers.

    Args:
        sparsity: fraction of zeros over all selected weights, in ``[0, 1)``.
        allocation: ``"global"`` (default), ``"uniform"`` or ``{module regex: sparsity}``.
        types: module types to prune (default: Linear and Conv1d/2d/3d).
        include: regexes on module FQNs to restrict the selection.
        exclude: regexes on module FQNs to skip.

    Example:
        >>> small = condensa.compress(model, Prune(0.9, exclude=[r"^fc$"]))  # doctest: +SKIP

    """

    def __init__(
        self,
        sparsity: float,
        *,
        allocation: AllocationSpec = "global",
        types: Types = None,
        include: Patterns = None,
        exclude: Patterns = None,
    ) -> None:
        selection = Selection.make(
            types=types,
            include=include,
            exclude=exclude,
            supported=(*LINEAR_AND_CONV, "Embedding", "LSTM"),
            default_types=LINEAR_AND_CONV,
        )
        options = _given(sparsity=sparsity, types=types, include=include, exclude=exclude)
        if allocation != "global":
            options["allocation"] = allocation
        super().__init__(
            Magnitude(),
            selection=selection,
            sparsity=sparsity,
            allocation=allocation,
            options=options,
        )


class BlockPrune(OperatorScheme):
    """Block pruning: remove whole ``block``-shaped tiles scored by ``criteria``.

    Args:
        sparsity: fraction of zeros, in ``[0, 1)``.
        block: tile shape, one size per weight dimension (two for conv weights: the
            kernel is taken whole). Must tile every selected weight.
        criteria: ``l1``, ``l2``, ``max``, ``min``, ``mean``, ``sum`` or ``scaled_l2``.
        allocation, types, include, exclude: as for :class:`Prune`.

    """

    def __init__(
        self,
        sparsity: float,
        *,
        block: Sequence[int] = (4, 4),
        criteria: str = "l2",
        allocation: AllocationSpec = "global",
        types: Types = None,
        include: Patterns = None,
        exclude: Patterns = None,
    ) -> None:
        selection = Selection.make(
            types=types, include=include, exclude=exclude, supported=LINEAR_AND_CONV
        )
        options = _given(
            sparsity=sparsity,
            block=list(block),
            criteria=criteria,
            types=types,
            include=include,
            exclude=exclude,
        )
        if allocation != "global":
            options["allocation"] = allocation
        super().__init__(
            Block(block=tuple(block), criteria=criteria),
            selection=selection,
            sparsity=sparsity,
            allocation=allocation,
            options=options,
        )


class _ChannelScheme(OperatorScheme):
    """Shared constructor of the channel-pruning schemes (filters, neurons, both)."""

    default_types: tuple[str, ...] = LINEAR_AND_CONV
    supported: tuple[str, ...] = LINEAR_AND_CONV
    skip_output_default: bool = True

    def __init__(
        self,
        sparsity: float,
        *,
        align: int | None = None,
        criteria: str = "l2",
        allocation: AllocationSpec = "global",
        types: Types = None,
        include: Patterns = None,
        exclude: Patterns = None,
        skip_output_layer: bool | None = None,
    ) -> None:
        skip = self.skip_output_default if skip_output_layer is None else skip_output_layer
        selection = Selection.make(
            types=types,
            include=include,
            exclude=exclude,
            supported=self.supported,
            default_types=self.default_types,
            skip_output_layer=skip,
        )
        options = _given(
            sparsity=sparsity,
            align=align,
            criteria=criteria,
            types=types,
            include=include,
            exclude=exclude,
            skip_output_layer=skip_output_layer,
        )
        if allocation != "global":
            options["allocation"] = allocation
        super().__init__(
            Channels(align=align, criteria=criteria),
            selection=selection,
            sparsity=sparsity,
            allocation=allocation,
            options=options,
        )
        self.align = align
        self.groups: tuple[ChannelGroup, ...] | None = None
        """Dependency groups to rank (set by :func:`~condensa.schemes.groups.bind_groups`,
        e.g. through ``compress(model, scheme, example_inputs)``); None: layer by layer."""

    def plan(self, model: nn.Module, weights: Mapping[str, torch.Tensor] | None = None) -> Plan:
        """Whole dependency groups when :attr:`groups` is set, else each layer's own rows."""
        if self.groups is None:
            embeddings = [
                t.fqn for t in self.selection.targets(model) if isinstance(t.module, nn.Embedding)
            ]
            if embeddings:
                raise ConfigError(
                    f"{type(self).__name__} prunes Embedding dimensions ({embeddings[:3]}) only "
                    "on dependency groups: pass example_inputs to compress"
                )
            return super().plan(model, weights)
        targets = self.selection.targets(model)
        values = {t.fqn: t.weight.detach() for t in targets}
        values.update({k: v for k, v in (weights or {}).items() if k in values})
        for t in targets:
            self.operator.check(values[t.fqn], name=t.fqn)
        assert self.sparsity is not None  # guaranteed by __init__
        return plan_groups(
            self.groups, model, targets, values, self.sparsity, self.allocation, self.align
        )


class FilterPrune(_ChannelScheme):
    """Filter pruning: remove whole output filters of convolutions (and their bias).

    Args:
        sparsity: fraction of filters' weights to remove, in ``[0, 1)``.
        align: round each layer's kept filters down to a multiple (e.g. 8), never to 0.
        criteria: filter score (default ``"l2"`` norm).
        allocation, types, include, exclude: as for :class:`Prune`.
        skip_output_layer: skip the model's last Linear layer (default False: filter
            pruning only touches convolutions).

    """

    default_types = CONV
    supported = CONV
    skip_output_default = False


class NeuronPrune(_ChannelScheme):
    """Neuron pruning: remove whole rows of Linear weights (and their bias entries).

    ``skip_output_layer=True`` (default) leaves the model's last Linear alone, since
    removing its neurons would remove output classes.
    """

    default_types = ("Linear",)
    supported = ("Linear", "Embedding")


class StructurePrune(_ChannelScheme):
    """Neurons of Linear layers and filters of convolutions under one ranking.

    With ``types=[..., "Embedding"]`` and dependency groups (``example_inputs``), the
    dimensions of an embedding go with the layers reading them (e.g. an LSTM's inputs).
    """

    supported = (*LINEAR_AND_CONV, "Embedding")


class NMPrune(OperatorScheme):
    """N:M semi-structured pruning (default 2:4): sparsity is fixed at ``1 - n/m``."""

    def __init__(
        self,
        n: int = 2,
        m: int = 4,
        *,
        types: Types = None,
        include: Patterns = None,
        exclude: Patterns = None,
    ) -> None:
        selection = Selection.make(
            types=types, include=include, exclude=exclude, supported=LINEAR_AND_CONV
        )
        options = _given(n=n, m=m, types=types, include=include, exclude=exclude)
        super().__init__(NM(n=n, m=m), selection=selection, options=options)


class Quantize(OperatorScheme):
    """Quantize weights: ``"float16"``, ``"bfloat16"``, ``"int8"``, or a registered dtype.

    ``"int8"`` is symmetric per channel. Any other name is a value operator registered
    with :func:`~condensa.operators.register_operator` (e.g. ``"int4"`` from
    examples/int4_storage.py), built with its defaults.

    By default Linear, convolution and Embedding weights are quantized (the embeddings
    of a language model are often half its bytes); ``types=`` narrows that.

    ``group_size=N`` (with ``"int8"`` or ``"int4"``) gives one scale and zero point per
    ``N`` consecutive inputs of each output row instead (group 128 is the usual choice
    for LLMs; ``symmetric=True`` drops the zero points; the ``gptq`` method chooses the
    levels with error compensation).

    In the compressed model the weights hold exactly the representable values (fake
    quantization), so training can continue; :func:`condensa.save` stores them in the
    narrow dtype.
    """

    def __init__(
        self,
        dtype: str = "float16",
        *,
        group_size: int | None = None,
        symmetric: bool | None = None,
        types: Types = None,
        include: Patterns = None,
        exclude: Patterns = None,
    ) -> None:
        if symmetric is not None and group_size is None:
            raise ConfigError("symmetric= applies to group quantization: give group_size= too")
        operator = (
            _value_operator(dtype)
            if group_size is None
            else GroupAffine(dtype, group_size, bool(symmetric))
        )
        selection = Selection.make(
            types=types,
            include=include,
            exclude=exclude,
            supported=(*LINEAR_AND_CONV, "Embedding", "LSTM"),
            default_types=(*LINEAR_AND_CONV, "Embedding"),
        )
        options = _given(
            dtype=dtype,
            group_size=group_size,
            symmetric=symmetric,
            types=types,
            include=include,
            exclude=exclude,
        )
        super().__init__(operator, selection=selection, options=options)


def _value_operator(dtype: str) -> Operator:
    """The operator storing values as ``dtype``: built in, or registered by that name."""
    if dtype == "int8":
        return Affine()
    if dtype in ("float16", "bfloat16", "float32"):
        return Cast(dtype)  # float32 is refused there, with the valid dtypes named
    # not dtype names (group quantization is chosen with group_size=)
    masking = (PruneOperator, NM, ChannelMask, Chain, Cast, Affine, GroupAffine)
    registered = OPERATORS.get(dtype) if isinstance(dtype, str) else None
    if registered is not None and not issubclass(registered, masking):
        return registered()
    extra = [name for name, cls in OPERATORS.items() if not issubclass(cls, masking)]
    raise ConfigError(
        f"unknown dtype {dtype!r}; valid dtypes: float16, bfloat16, int8"
        + "".join(f", {name}" for name in extra)
        + " (int8 and int4 with group_size=N for group-wise scales)"
    )


class Compose(Scheme):
    """Apply schemes left to right; decompression runs right to left.

    Each scheme is planned on the weights as the previous ones left them, so
    ``Compose([Prune(0.9), Quantize("float16")])`` ranks the float32 weights, then
    casts the survivors.
    """

    def __init__(self, schemes: Sequence[Scheme]) -> None:
        items = list(schemes) if isinstance(schemes, Sequence) else None
        if not items or not all(isinstance(s, Scheme) for s in items):
            raise ConfigError(f"Compose needs a non-empty list of schemes, got {schemes!r}")
        self.schemes = items

    def plan(self, model: nn.Module, weights: Mapping[str, torch.Tensor] | None = None) -> Plan:
        """Plan each scheme on the projection left by the previous ones, then merge."""
        merged = Plan()
        current = dict(weights or {})
        for scheme in self.schemes:
            step = scheme.plan(model, current or None)
            values = step.weights()
            values.update({k: v for k, v in current.items() if k in values})
            current.update(step.project(values))
            merged = merged.merge(step)
        return merged

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "Compose", "schemes": [...]}``."""
        return {"type": "Compose", "schemes": [s.to_dict() for s in self.schemes]}

    def __repr__(self) -> str:
        return f"Compose({self.schemes!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Compose) and self.schemes == other.schemes

    __hash__ = None  # type: ignore[assignment]
