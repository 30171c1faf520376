"""Counting: the one definition of how many entries a sparsity keeps, and `align` rounding."""

from __future__ import annotations

import math
from numbers import Real

import torch

from condensa.errors import ConfigError, NonFiniteError


def check_sparsity(sparsity: object, *, name: str = "sparsity") -> float:
    """Validate a sparsity (fraction of zeros) and return it as a float.

    Args:
        sparsity: the value to check; must be a real number in ``[0, 1)``.
        name: how to name the value in the error message.

    Returns:
        ``float(sparsity)``.

    Raises:
        ConfigError: if ``sparsity`` is not a real number or lies outside ``[0, 1)``.

    Example:
        >>> check_sparsity(0.5)
        0.5

    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, Real):
        raise ConfigError(
            f"{name} must be a number in [0, 1), got {sparsity!r} of type {type(sparsity).__name__}"
        )
    value = float(sparsity)
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise ConfigError(f"{name} must lie in [0, 1) (fraction of zeros), got {sparsity!r}")
    return value


def n_keep(n: int, sparsity: float) -> int:
    """Number of entries kept out of ``n`` at ``sparsity``: ``floor((1 - sparsity) * n)``.

    This is the single definition used everywhere in Condensa: a sparsity is a floor on
    what is removed, so at least ``sparsity * n`` entries (weights, channels, heads)
    go — Torch-Pruning's convention for its ratios (``int(n * (1 - ratio))`` kept), and
    what a user reading "30 % of the channels" expects of every layer (rounding to the
    nearest count under-delivers by up to half a unit per group, which adds up over a
    network of small groups). Float rounding is absorbed (``n_keep(10, 0.9)`` is 1, not
    0). The result is clamped to ``[0, n]``.

    Example:
        >>> n_keep(10, 0.25)
        7

    """
    if n < 0:
        raise ConfigError(f"count must be non-negative, got {n}")
    kept = (1.0 - sparsity) * n
    return min(n, max(0, math.floor(kept + 1e-9 * max(1.0, kept))))


def align_keep(kept: int, align: int | None, n: int, *, what: str = "layer") -> int:
    """Round a kept count down to a multiple of ``align``, never to zero.

    Args:
        kept: number of structures the allocation wants to keep.
        align: the multiple (e.g. 8 for tensor cores), or ``None`` for no rounding.
        n: total number of structures in the layer.
        what: the layer's name, for error messages.

    Returns:
        ``max(align, (kept // align) * align)``, and ``kept`` unchanged when ``align`` is
        ``None``.

    Raises:
        ConfigError: if ``align`` is not a positive integer or exceeds ``n``.

    Example:
        >>> align_keep(13, 8, 32)
        8

    """
    if align is None:
        return kept
    if align > n:
        raise ConfigError(
            f"align={align} is larger than {what}, which has only {n} structures; "
            f"use align <= {n} or exclude the layer"
        )
    return max(align, (kept // align) * align)


def check_align(align: object) -> int | None:
    """Validate an ``align`` option: ``None`` or a positive integer."""
    if align is None:
        return None
    if isinstance(align, bool) or not isinstance(align, int) or align < 1:
        raise ConfigError(f"align must be None or a positive integer, got {align!r}")
    return align


def check_finite(tensor: torch.Tensor, *, name: str) -> None:
    """Raise :class:`NonFiniteError` if ``tensor`` holds NaN or infinite values."""
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        n_bad = int((~torch.isfinite(tensor)).sum())
        raise NonFiniteError(
            f"{name} holds {n_bad} NaN/inf value(s) out of {tensor.numel()}; "
            "compression needs finite weights"
        )
