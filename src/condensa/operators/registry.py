"""Operator names used in scheme specs, and construction from plain data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from condensa.errors import ConfigError
from condensa.operators.base import Operator
from condensa.operators.chain import Chain
from condensa.operators.prune import NM, Block, ChannelMask, Channels, Magnitude
from condensa.operators.quantize import Affine, Cast, GroupAffine

OPERATORS: dict[str, type[Operator]] = {
    "magnitude": Magnitude,
    "block": Block,
    "channels": Channels,
    "channel_mask": ChannelMask,
    "nm": NM,
    "cast": Cast,
    "int8": Affine,
    "group": GroupAffine,
    "chain": Chain,
}
"""Operator classes by spec name."""

ALIASES: dict[str, dict[str, Any]] = {
    "prune": {"type": "magnitude"},
    "filter": {"type": "channels"},
    "neuron": {"type": "channels"},
    "float16": {"type": "cast", "dtype": "float16"},
    "bfloat16": {"type": "cast", "dtype": "bfloat16"},
}
"""Convenience names that expand to a registered operator with preset options."""


def register_operator(name: str, cls: type[Operator]) -> type[Operator]:
    """Make ``cls`` buildable as ``{"type": name, **options}`` in scheme specs (``Rules``).

    Returns ``cls``, e.g. ``register_operator("int4", Int4)``.

    Raises:
        ConfigError: ``name`` is taken (built-in names and aliases included) or ``cls``
            is not an :class:`Operator` subclass.

    """
    if not (isinstance(cls, type) and issubclass(cls, Operator)):
        raise ConfigError(f"{cls!r} is not an Operator subclass")
    if name in OPERATORS or name in ALIASES:
        taken = OPERATORS[name].__name__ if name in OPERATORS else "an alias"
        raise ConfigError(f"operator name {name!r} is taken by {taken}")
    OPERATORS[name] = cls
    return cls


def from_dict(spec: Mapping[str, Any]) -> Operator:
    """Build an operator from ``{"type": name, **options}``.

    Raises:
        ConfigError: unknown type (the valid names are listed) or unknown option.

    Example:
        >>> from_dict({"type": "block", "block": [2, 2]})
        Block(sparsity=0.0, block=(2, 2), criteria='l2')

    """
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ConfigError(f"an operator spec needs a 'type' key, got {spec!r}")
    options = dict(spec)
    kind = options.pop("type")
    if kind in ALIASES:
        preset = dict(ALIASES[kind])
        kind = preset.pop("type")
        options = {**preset, **options}
    if kind not in OPERATORS:
        valid = ", ".join(sorted(set(OPERATORS) | set(ALIASES)))
        raise ConfigError(f"unknown operator type {kind!r}; valid types: {valid}")
    cls = OPERATORS[kind]
    if cls is Chain:
        options["operators"] = tuple(from_dict(o) for o in options.get("operators", ()))
    if "block" in options and isinstance(options["block"], list):
        options["block"] = tuple(options["block"])
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"invalid options for operator {kind!r}: {exc}") from None
