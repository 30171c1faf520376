"""N:M semi-structured masks: keep the N largest of every M consecutive input weights."""

from __future__ import annotations

import torch

from condensa.errors import ConfigError, ShapeError


def check_nm(n: object, m: object) -> tuple[int, int]:
    """Validate an N:M pattern: integers with ``0 < n < m``."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, m)):
        raise ConfigError(f"n and m must be integers, got n={n!r}, m={m!r}")
    assert isinstance(n, int) and isinstance(m, int)  # for type checkers
    if not 0 < n < m:
        raise ConfigError(f"N:M needs 0 < n < m, got n={n}, m={m}")
    return n, m


def check_nm_shape(shape: tuple[int, ...], m: int, *, name: str = "weight") -> None:
    """Raise :class:`ShapeError` unless the input dimension of ``shape`` is divisible by ``m``."""
    if len(shape) < 2:
        raise ShapeError(f"N:M needs a weight with an input dimension; {name} has shape {shape}")
    if shape[1] % m:
        raise ShapeError(
            f"m={m} does not divide the input dimension {shape[1]} of {name} of shape {shape}"
        )


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` largest-magnitude of every ``m`` consecutive weights along dim 1.

    For a convolution weight `(out, in, *k)` the groups run along the input channels
    at each kernel position (the layout sparse tensor cores expect after permuting).
    Ties are broken towards the lower index.

    Args:
        weight: `(out, in, *k)` with ``in % m == 0``.
        n: weights kept per group.
        m: group size.

    Returns:
        `bool` mask of ``weight.shape`` with exactly ``n`` True in each group.

    """
    check_nm(n, m)
    check_nm_shape(tuple(weight.shape), m)
    moved = weight.detach().abs().movedim(1, -1)  # (out, *k, in)
    groups = moved.reshape(-1, m).float()  # (out * prod(k) * in / m, m)
    # stable descending sort keeps the lower index first on ties
    order = torch.argsort(-groups, dim=1, stable=True)[:, :n]
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, order, True)
    return keep.reshape(moved.shape).movedim(-1, 1)
