"""Group-wise quantization: one scale (and zero point) per ``group_size`` inputs of a row.

A weight `(out, *rest)` is seen as rows `(out, cols)` with ``cols = prod(rest)``; each row
is cut into ``ceil(cols / group_size)`` groups of consecutive columns (the last may be
shorter), and every group has its own float32 scale and integer zero point:
``w ≈ (q - zero) * scale`` with integer ``q`` in ``[qmin, qmax]``.

- symmetric: ``q`` in ``[-(2^(b-1) - 1), 2^(b-1) - 1]``, zero 0, scale ``max|w| / qmax``;
- asymmetric (the GPTQ and AWQ default for int4): ``q`` in ``[0, 2^b - 1]``, scale
  ``(max - min) / qmax`` and zero ``round(-min / scale)``, so all ``2^b`` levels are used
  on the group's own range (which always includes 0, so zero stays exact).

This is the layout of GPTQ and of the int4 weight-only kernels (group 128 is the common
choice). Scales are *data*: a quantized tensor keeps the scales it was quantized with,
so methods that choose the integer values themselves (GPTQ) are stored exactly.
"""

from __future__ import annotations

import math

import torch

from condensa.errors import ConfigError

GROUP_BITS = {"int8": 8, "int4": 4}
"""Bits per value of each group-quantization dtype."""


def check_group(dtype: object, group_size: object) -> tuple[int, int | None]:
    """``(bits, group_size)`` for a group-quantization dtype and size (None: whole rows).

    Raises:
        ConfigError: an unknown dtype or a group size that is not a positive integer.

    """
    if dtype not in GROUP_BITS:
        raise ConfigError(
            f"group quantization dtype {dtype!r} is not supported; valid: {', '.join(GROUP_BITS)}"
        )
    if group_size is not None and (
        isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
    ):
        raise ConfigError(f"group_size must be a positive integer or None, got {group_size!r}")
    return GROUP_BITS[str(dtype)], group_size


def qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """``(qmin, qmax)`` of the integer levels."""
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def n_groups(cols: int, group_size: int) -> int:
    """Groups per row: ``ceil(cols / group_size)``."""
    return max(1, math.ceil(cols / group_size))


def expand(per_group: torch.Tensor, cols: int, group_size: int) -> torch.Tensor:
    """`(out, groups)` values repeated to `(out, cols)` (one per column)."""
    return per_group.repeat_interleave(group_size, dim=1)[:, :cols]


def _grouped(rows: torch.Tensor, group_size: int, fill: float) -> torch.Tensor:
    out, cols = rows.shape
    groups = n_groups(cols, group_size)
    padded = torch.full((out, groups * group_size), fill, dtype=torch.float32, device=rows.device)
    padded[:, :cols] = rows.detach().float()
    return padded.reshape(out, groups, group_size)


def group_params(
    rows: torch.Tensor, group_size: int, bits: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(out, groups)` float32 scales and zero points of ``rows`` `(out, cols)`.

    All-zero groups get scale 1 (and zero 0 or the middle level), so they stay zero.
    """
    qmin, qmax = qrange(bits, symmetric)
    if symmetric:
        absmax = _grouped(rows.abs(), group_size, 0.0).amax(dim=2)
        scale = absmax / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return scale, torch.zeros_like(scale)
    low = _grouped(rows, group_size, 0.0).amin(dim=2).clamp(max=0.0)
    high = _grouped(rows, group_size, 0.0).amax(dim=2).clamp(min=0.0)
    scale = (high - low) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-low / scale).clamp_(qmin, qmax)
    return scale, zero


def quantize_groups(
    rows: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor,
    group_size: int,
    qrange_: tuple[int, int],
) -> torch.Tensor:
    """`int16` levels ``clamp(round(w / scale) + zero, qmin, qmax)`` of `(out, cols)` rows."""
    cols = rows.shape[1]
    levels = torch.round(rows.detach().float() / expand(scale, cols, group_size))
    levels += expand(zero, cols, group_size)
    return levels.clamp_(*qrange_).to(torch.int16)


def dequantize_groups(
    q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, group_size: int, dtype: torch.dtype
) -> torch.Tensor:
    """``(q - zero) * scale`` of `(out, cols)` levels, in ``dtype``."""
    cols = q.shape[1]
    centred = q.float() - expand(zero, cols, group_size)
    return (centred * expand(scale, cols, group_size)).to(dtype)


def fake_quantize_groups(
    weight: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor,
    group_size: int,
    qrange_: tuple[int, int],
) -> torch.Tensor:
    """Quantize-dequantize ``weight`` (any shape, rows on dim 0) with fixed scales and zeros.

    The gradient is the identity (straight-through), so training can continue.
    """
    rows = weight.reshape(weight.shape[0], -1)
    q = quantize_groups(rows, scale, zero, group_size, qrange_)
    projected = dequantize_groups(q, scale, zero, group_size, weight.dtype).reshape(weight.shape)
    return weight + (projected - weight).detach()
