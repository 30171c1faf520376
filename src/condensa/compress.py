"""Direct compression: π applied once, on a copy."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.inputs import check_inputs
from condensa.masking import apply_plan, copy_model
from condensa.schemes import Scheme


def compress(model: nn.Module, scheme: Scheme, example_inputs: Any = None) -> nn.Module:
    """Return a compressed copy of ``model``; ``model`` itself is never modified.

    With ``example_inputs``, the channel schemes (``FilterPrune``, ``NeuronPrune``,
    ``StructurePrune``) rank and mask whole dependency groups: channels coupled by
    residual additions, concatenation or depthwise convolutions go together, with
    their BatchNorm entries, so :func:`condensa.thin` removes all of them exactly.
    Without, each layer's rows are ranked on their own.

    The copy holds masks and fake quantization as parametrizations, so it can be
    trained further (masked fine-tuning, L-C), inspected with :func:`condensa.stats`,
    thinned or saved.

    Args:
        model: any ``nn.Module``.
        scheme: a :class:`~condensa.schemes.Scheme`.
        example_inputs: optional tensor, tuple of positional inputs or dict of keyword
            arguments, used once to trace the model's channel groups.

    Returns:
        The compressed copy.

    Raises:
        ConfigError: ``scheme`` is not a Scheme.
        CondensaError: from planning (selection, shapes, non-finite weights).

    Example:
        >>> from condensa import schemes
        >>> small = condensa.compress(model, schemes.Prune(0.9))  # doctest: +SKIP
        >>> fast = condensa.compress(model, schemes.FilterPrune(0.5), x)  # doctest: +SKIP

    """
    if not isinstance(scheme, Scheme):
        raise ConfigError(f"expected a condensa Scheme, got {scheme!r}")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"expected an nn.Module, got {type(model).__name__}")
    if example_inputs is not None:
        check_inputs(example_inputs)
        scheme = with_groups(model, scheme, example_inputs)
    compressed = copy_model(model)
    apply_plan(compressed, scheme.plan(compressed))
    return compressed


def with_groups(model: nn.Module, scheme: Scheme, example_inputs: Any) -> Scheme:
    """``scheme`` bound to ``model``'s dependency groups (traced on ``example_inputs``)."""
    from condensa.schemes.groups import bind_groups
    from condensa.thinning.groups import dependency_groups  # tracing lives above schemes

    if not uses_groups(scheme):
        return scheme
    return bind_groups(scheme, dependency_groups(model, example_inputs))


def uses_groups(scheme: object) -> bool:
    """Whether ``scheme`` (or a scheme it composes) ranks dependency groups."""
    inner = getattr(scheme, "schemes", None)
    if isinstance(inner, list):
        return any(uses_groups(s) for s in inner)
    return hasattr(scheme, "groups")


def unchanged(model: nn.Module, compressed: nn.Module) -> bool:
    """Whether ``compressed``, a compressed copy of ``model``, kept every parameter as it is.

    Its effective tensors (masks and fake quantization applied) are compared with
    ``model``'s bit for bit: pruning at sparsity 0 keeps them, fp16 rounding does not.
    """
    modules = dict(compressed.named_modules())
    for name, tensor in model.named_parameters():
        module_name, _, tensor_name = name.rpartition(".")
        now = getattr(modules[module_name], tensor_name)
        if now.shape != tensor.shape or not torch.equal(now.detach(), tensor.detach()):
            return False
    return True
