"""Group-wise symmetric quantization: one scale per ``group_size`` consecutive inputs of a row.

A weight `(out, *rest)` is seen as rows `(out, cols)` with ``cols = prod(rest)``; each row
is cut into ``ceil(cols / group_size)`` groups of consecutive columns (the last may be
shorter), and every group has its own float32 scale. This is the layout of GPTQ and of
the int4 weight-only kernels (group 128 is the common choice). Scales are *data*: a
quantized tensor keeps the scales it was quantized with, so methods that choose the
integer values themselves (GPTQ) are stored exactly.
"""

from __future__ import annotations

import math

import torch

from condensa.errors import ConfigError

GROUP_LEVELS = {"int8": 127, "int4": 7}
"""Largest integer level per dtype (symmetric ranges; zero is exact)."""


def check_group(dtype: object, group_size: object) -> tuple[int, int | None]:
    """``(levels, group_size)`` for a group-quantization dtype and size (None: whole rows).

    Raises:
        ConfigError: an unknown dtype or a group size that is not a positive integer.

    """
    if dtype not in GROUP_LEVELS:
        raise ConfigError(
            f"group quantization dtype {dtype!r} is not supported; valid: {', '.join(GROUP_LEVELS)}"
        )
    if group_size is not None and (
        isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
    ):
        raise ConfigError(f"group_size must be a positive integer or None, got {group_size!r}")
    return GROUP_LEVELS[str(dtype)], group_size


def n_groups(cols: int, group_size: int) -> int:
    """Groups per row: ``ceil(cols / group_size)``."""
    return max(1, math.ceil(cols / group_size))


def expand_scale(scale: torch.Tensor, cols: int, group_size: int) -> torch.Tensor:
    """`(out, groups)` scales repeated to `(out, cols)` (one per column)."""
    return scale.repeat_interleave(group_size, dim=1)[:, :cols]


def group_scale(rows: torch.Tensor, group_size: int, levels: int) -> torch.Tensor:
    """`(out, groups)` float32 scales ``max|w| / levels`` of each group (1.0 for all-zero groups).

    Args:
        rows: `(out, cols)`.
        group_size: columns per group.
        levels: largest integer level.

    """
    out, cols = rows.shape
    groups = n_groups(cols, group_size)
    padded = torch.zeros(out, groups * group_size, dtype=torch.float32, device=rows.device)
    padded[:, :cols] = rows.detach().abs().float()
    absmax = padded.reshape(out, groups, group_size).amax(dim=2)
    scale = absmax / levels
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_groups(
    rows: torch.Tensor, scale: torch.Tensor, group_size: int, levels: int
) -> torch.Tensor:
    """`int8` levels ``clamp(round(w / scale), -levels, levels)`` of `(out, cols)` rows."""
    full = expand_scale(scale, rows.shape[1], group_size)
    return torch.round(rows.detach().float() / full).clamp_(-levels, levels).to(torch.int8)


def dequantize_groups(
    q: torch.Tensor, scale: torch.Tensor, group_size: int, dtype: torch.dtype
) -> torch.Tensor:
    """``q * scale`` of `(out, cols)` levels, in ``dtype``."""
    return (q.float() * expand_scale(scale, q.shape[1], group_size)).to(dtype)


def fake_quantize_groups(
    weight: torch.Tensor, scale: torch.Tensor, group_size: int, levels: int
) -> torch.Tensor:
    """Quantize-dequantize ``weight`` (any shape, rows on dim 0) with fixed scales.

    The gradient is the identity (straight-through), so training can continue.
    """
    rows = weight.reshape(weight.shape[0], -1)
    q = quantize_groups(rows, scale, group_size, levels)
    projected = dequantize_groups(q, scale, group_size, weight.dtype).reshape(weight.shape)
    return weight + (projected - weight).detach()
