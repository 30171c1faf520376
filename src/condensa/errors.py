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
