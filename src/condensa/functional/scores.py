"""Importance scores of structures: blocks and channels, under one set of criteria."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from condensa.errors import ConfigError, ShapeError

CRITERIA = ("l1", "l2", "max", "min", "mean", "sum", "scaled_l2")
"""Valid criteria names. All are computed on the entries of one structure:

- ``l1``: sum of absolute values; ``l2``: Euclidean norm;
- ``max`` / ``min`` / ``mean``: of absolute values;
- ``sum``: absolute value of the signed sum (structures whose entries cancel score low);
- ``scaled_l2``: l2 divided by sqrt(entries), i.e. the root-mean-square, comparable
  across structures of different sizes.
"""


def check_criteria(criteria: object) -> str:
    """Validate a criteria name and return it."""
    if not isinstance(criteria, str) or criteria not in CRITERIA:
        raise ConfigError(f"unknown criteria {criteria!r}; valid criteria: {', '.join(CRITERIA)}")
    return criteria


def reduce(x: torch.Tensor, criteria: str, dims: Sequence[int]) -> torch.Tensor:
    """Score each structure of ``x`` by reducing over ``dims`` with ``criteria``.

    Args:
        x: the grouped tensor; ``dims`` index the entries of one structure.
        criteria: one of :data:`CRITERIA`.
        dims: the dimensions to reduce.

    Returns:
        `float32` scores, ``x`` with ``dims`` removed.

    """
    check_criteria(criteria)
    dims = tuple(dims)
    x = x.detach().float()
    if criteria == "l1":
        return x.abs().sum(dim=dims)
    if criteria == "l2":
        return x.pow(2).sum(dim=dims).sqrt()
    if criteria == "scaled_l2":
        count = math.prod(x.shape[d] for d in dims)
        return x.pow(2).sum(dim=dims).sqrt() / math.sqrt(max(count, 1))
    if criteria == "max":
        return x.abs().amax(dim=dims)
    if criteria == "min":
        return x.abs().amin(dim=dims)
    if criteria == "mean":
        return x.abs().mean(dim=dims)
    return x.sum(dim=dims).abs()  # "sum"


def check_block(block: Sequence[int], shape: Sequence[int], *, name: str = "weight") -> tuple:
    """Validate that ``block`` tiles a tensor of ``shape``; return the full block shape.

    A block may give one size per dimension, or only the first two for a 3-D..5-D
    convolution weight (the kernel dimensions are then taken whole).

    Raises:
        ConfigError: if ``block`` is not a sequence of positive integers.
        ShapeError: if it does not tile ``shape``.

    """
    if (
        isinstance(block, (str, bytes))
        or not isinstance(block, Sequence)
        or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)
    ):
        raise ConfigError(f"block must be a sequence of positive integers, got {block!r}")
    shape = tuple(shape)
    full = tuple(block)
    if len(full) == 2 and len(shape) > 2:
        full = full + shape[2:]
    if len(full) != len(shape):
        raise ShapeError(
            f"block {tuple(block)} has {len(block)} dimensions but {name} of shape {shape} "
            f"has {len(shape)}; give one size per dimension (or two for a conv weight)"
        )
    if any(s % b for s, b in zip(shape, full, strict=True)):
        raise ShapeError(
            f"block {tuple(block)} does not tile {name} of shape {shape}; "
            "choose divisors of each dimension"
        )
    return full


def _blocked_view(x: torch.Tensor, block: Sequence[int]) -> torch.Tensor:
    """View ``x`` as ``(n_0, b_0, n_1, b_1, ...)`` with ``n_i = x.shape[i] // b_i``."""
    sizes: list[int] = []
    for s, b in zip(x.shape, block, strict=True):
        sizes += [s // b, b]
    return x.reshape(sizes)


def block_scores(weight: torch.Tensor, block: Sequence[int], criteria: str) -> torch.Tensor:
    """Score every block of ``weight``.

    Args:
        weight: `(d_0, d_1, ...)`, tiled by ``block``.
        block: a full block shape (see :func:`check_block`).
        criteria: one of :data:`CRITERIA`.

    Returns:
        `(d_0 / b_0, d_1 / b_1, ...)` float32 scores.

    """
    view = _blocked_view(weight, block)
    return reduce(view, criteria, dims=range(1, view.dim(), 2))


def expand_blocks(block_mask: torch.Tensor, block: Sequence[int]) -> torch.Tensor:
    """Expand a per-block mask `(n_0, n_1, ...)` to the weight shape `(n_0*b_0, ...)`."""
    out = block_mask
    for dim, b in enumerate(block):
        out = out.repeat_interleave(b, dim=dim)
    return out


def channel_scores(weight: torch.Tensor, criteria: str) -> torch.Tensor:
    """Score each output channel (row of a Linear, filter of a Conv) of ``weight``.

    Args:
        weight: `(out, ...)`.
        criteria: one of :data:`CRITERIA`.

    Returns:
        `(out,)` float32 scores.

    """
    return reduce(weight.reshape(weight.shape[0], -1), criteria, dims=(1,))
