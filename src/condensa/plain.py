"""Plain data: one conversion of Python values to what JSON and TOML can hold."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def to_plain(value: Any) -> Any:
    """``value`` as JSON/TOML-friendly data.

    ``None``, booleans, numbers and strings are kept; mappings become dicts with string
    keys and sequences (lists, tuples) lists, their items converted the same way;
    dataclass instances become dicts of their fields; classes become their names;
    other numbers (numpy or torch scalars) go through ``float``; anything else
    through ``str``.

    Example:
        >>> to_plain({"types": (int, "Linear"), 1: 2.5})
        {'types': ['int', 'Linear'], '1': 2.5}

    """
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, type):
        return value.__name__
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
