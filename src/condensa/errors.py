"""The Condensa error hierarchy.

Every error raised on purpose by Condensa derives from :class:`CondensaError`, and
each subclass also inherits the builtin a caller would naturally catch
(``ValueError`` for bad values, ``TypeError`` for unsupported modules), so both
``except condensa.CondensaError`` and ``except ValueError`` work.
"""

from __future__ import annotations


class CondensaError(Exception):
    """Root of every error Condensa raises on purpose."""


class ConfigError(CondensaError, ValueError):
    """An option, a scheme spec or a configuration value is invalid."""


class ShapeError(CondensaError, ValueError):
    """A tensor's shape does not fit what an operator needs (e.g. a block that does not tile)."""


class SelectionError(ConfigError):
    """A layer selection (types, include/exclude patterns) matched nothing, or too little."""


class UnsupportedModuleError(CondensaError, TypeError):
    """A module type cannot be handled by the requested operation."""


class NonFiniteError(CondensaError, ValueError):
    """A tensor holds NaN or infinite values where finite ones are required."""


__all__ = [
    "CondensaError",
    "ConfigError",
    "NonFiniteError",
    "SelectionError",
    "ShapeError",
    "UnsupportedModuleError",
]


def check_int(name: str, value: object, minimum: int = 1, *, optional: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int >= ``minimum`` (bools refused).

    The message names the option and the value: ``"steps must be a positive integer,
    got 0"``; with ``optional``, None is accepted too.
    """
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        prefix = "None or " if optional else ""
        raise ConfigError(f"{name} must be {prefix}{wanted}, got {value!r}")
