"""Helpers shared by the reference models."""

from __future__ import annotations

from condensa.errors import ConfigError


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1.

    Raises:
        ConfigError: ``width`` is not positive.

    """
    if not isinstance(width, (int, float)) or width <= 0:
        raise ConfigError(f"width must be a positive number, got {width!r}")
    return max(1, round(channels * width))
