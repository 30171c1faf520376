"""Direct compression: π applied once, on a copy."""

from __future__ import annotations

from torch import nn

from condensa.errors import ConfigError
from condensa.masking import apply_plan, copy_model
from condensa.schemes import Scheme


def compress(model: nn.Module, scheme: Scheme) -> nn.Module:
    """Return a compressed copy of ``model``; ``model`` itself is never modified.

    The copy holds masks and fake quantization as parametrizations, so it can be
    trained further (masked fine-tuning, L-C), inspected with :func:`condensa.stats`,
    thinned or saved.

    Args:
        model: any ``nn.Module``.
        scheme: a :class:`~condensa.schemes.Scheme`.

    Returns:
        The compressed copy.

    Raises:
        ConfigError: ``scheme`` is not a Scheme.
        CondensaError: from planning (selection, shapes, non-finite weights).

    Example:
        >>> from condensa import schemes
        >>> small = condensa.compress(model, schemes.Prune(0.9))  # doctest: +SKIP

    """
    if not isinstance(scheme, Scheme):
        raise ConfigError(f"expected a condensa Scheme, got {scheme!r}")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"expected an nn.Module, got {type(model).__name__}")
    compressed = copy_model(model)
    apply_plan(compressed, scheme.plan(compressed))
    return compressed
