"""Quantization math: fp16/bf16 casts and symmetric per-channel int8, with fake quantization."""

from __future__ import annotations

import torch

from condensa.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
}
"""Valid quantization dtypes by name."""

INT8_MAX = 127  # symmetric range [-127, 127]: zero is exact and the grid is sign-symmetric


def check_dtype(dtype: object) -> str:
    """Validate a quantization dtype name (``"float16"``, ``"bfloat16"``, ``"int8"``)."""
    if isinstance(dtype, torch.dtype):
        names = {v: k for k, v in DTYPES.items()}
        if dtype in names:
            return names[dtype]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; valid dtypes: {', '.join(DTYPES)}")
    return dtype


def cast_roundtrip(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round ``weight`` to ``dtype`` and back: the value a cast-compressed weight takes."""
    return weight.to(dtype).to(weight.dtype)


def int8_scale(weight: torch.Tensor, axis: int = 0, levels: int = INT8_MAX) -> torch.Tensor:
    """Per-channel symmetric scale ``max|w| / levels`` along ``axis`` (1.0 for all-zero channels).

    Args:
        weight: `(out, ...)` when ``axis == 0``.
        axis: the channel dimension that gets its own scale.
        levels: the largest integer level (127 for int8; 7 for int4).

    Returns:
        float32 scale broadcastable to ``weight`` (size 1 on every dim except ``axis``).

    """
    dims = [d for d in range(weight.dim()) if d != axis]
    absmax = weight.detach().abs().float().amax(dim=dims, keepdim=True) if dims else weight.abs()
    scale = absmax / levels
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_int8(
    weight: torch.Tensor, axis: int = 0, levels: int = INT8_MAX
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-channel quantization with round-to-nearest (int8 unless ``levels``).

    Returns:
        ``(q, scale)``: `int8` tensor of ``weight.shape`` in ``[-levels, levels]`` and the
        float32 scale from :func:`int8_scale`. ``q * scale`` is within half a step of
        ``weight``.

    """
    scale = int8_scale(weight, axis, levels)
    q = torch.round(weight.detach().float() / scale).clamp_(-levels, levels)
    return q.to(torch.int8), scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`quantize_int8`: ``q * scale`` in ``dtype``."""
    return (q.float() * scale).to(dtype)


def fake_quantize_int8(weight: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """Quantize-dequantize with a straight-through gradient (identity in backward)."""
    q, scale = quantize_int8(weight, axis)
    projected = dequantize_int8(q, scale, weight.dtype)
    return weight + (projected - weight).detach()


def fake_cast(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round to ``dtype`` and back with a straight-through gradient."""
    return weight + (cast_roundtrip(weight, dtype) - weight).detach()
