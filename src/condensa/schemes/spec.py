"""Schemes as plain data: dicts, TOML, and regex-keyed per-layer rule specs."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.functional import check_sparsity
from condensa.operators import Operator, PruneOperator, flatten
from condensa.operators import from_dict as operator_from_dict
from condensa.schemes.allocation import check_allocation
from condensa.schemes.base import OperatorScheme, Scheme
from condensa.schemes.builtins import (
    BlockPrune,
    Compose,
    FilterPrune,
    NeuronPrune,
    NMPrune,
    Prune,
    Quantize,
    StructurePrune,
)
from condensa.schemes.decoder import MLPPrune
from condensa.schemes.heads import HeadPrune
from condensa.schemes.plan import Plan
from condensa.schemes.selection import LINEAR_AND_CONV, MODULE_TYPES, Selection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMES: dict[str, type[Scheme]] = {
    cls.__name__: cls
    for cls in (
        Prune,
        BlockPrune,
        NeuronPrune,
        FilterPrune,
        StructurePrune,
        HeadPrune,
        MLPPrune,
        NMPrune,
        Quantize,
    )
}
"""Built-in scheme classes by spec name (``Compose`` and ``Rules`` are handled too)."""

RESERVED = ("sparsity", "allocation", "types")
DEFAULT_KEY = "*"


class Rules(Scheme):
    """Per-layer rules keyed by module-FQN regexes, with a ``"*"`` default.

    Each module of ``types`` takes the first key (in order) whose regex it matches
    with :func:`re.search`, else ``"*"`` if given, else it is left alone. A key maps
    to one operator spec or a list (a chain, applied in order); ``[]`` skips the
    module. Pruning operators without their own ``"sparsity"`` share the top-level
    sparsity, allocated over the modules of their key by ``allocation``.

    Example:
        >>> Rules({"sparsity": 0.5, "*": [{"type": "block", "block": [2, 2]}],
        ...        "^fc$": [{"type": "magnitude", "sparsity": 0.9}]})  # doctest: +SKIP

    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping):
            raise ConfigError(f"a rules spec must be a mapping, got {spec!r}")
        self.sparsity = None if spec.get("sparsity") is None else check_sparsity(spec["sparsity"])
        self.allocation = check_allocation(spec.get("allocation", "global"))
        types = spec.get("types", list(LINEAR_AND_CONV))
        unknown = [t for t in types if t not in MODULE_TYPES]
        if unknown:
            raise ConfigError(f"unknown module type(s) {unknown}; valid: {', '.join(MODULE_TYPES)}")
        self.types = tuple(types)
        self.rules: dict[str, tuple[tuple[Operator, bool], ...]] = {}
        for key, value in spec.items():
            if key in RESERVED:
                continue
            if key != DEFAULT_KEY:
                try:
                    re.compile(key)
                except re.error as exc:
                    raise ConfigError(f"invalid regex key {key!r}: {exc}") from None
            items = [value] if isinstance(value, Mapping) else value
            if not isinstance(items, Sequence) or isinstance(items, str):
                raise ConfigError(f"rule {key!r} must map to an operator spec or a list of them")
            chain: list[tuple[Operator, bool]] = []
            for item in items:
                op = operator_from_dict(item)
                fixed = isinstance(item, Mapping) and "sparsity" in item
                if isinstance(op, PruneOperator) and not fixed and self.sparsity is None:
                    raise ConfigError(
                        f"rule {key!r} prunes without a sparsity: set a top-level 'sparsity' "
                        "or one on the operator"
                    )
                chain.extend((o, fixed) for o in flatten(op))
            self.rules[key] = tuple(chain)
        if not self.rules:
            raise ConfigError("a rules spec needs at least one regex key or '*'")
        self._spec = dict(spec)

    def _assign(self, model: nn.Module) -> dict[str, list[str]]:
        classes = tuple(MODULE_TYPES[t] for t in self.types)
        keys = [k for k in self.rules if k != DEFAULT_KEY]
        assigned: dict[str, list[str]] = {k: [] for k in self.rules}
        for name, module in model.named_modules():
            if not isinstance(module, classes):
                continue
            key = next((k for k in keys if re.search(k, name)), None)
            if key is None and DEFAULT_KEY in self.rules:
                key = DEFAULT_KEY
            if key is not None:
                assigned[key].append(name)
        unused = [k for k, names in assigned.items() if not names and k != DEFAULT_KEY]
        if unused:
            raise ConfigError(f"rule key(s) {unused} match no {'/'.join(self.types)} module")
        return assigned

    def plan(self, model: nn.Module, weights: Mapping[str, torch.Tensor] | None = None) -> Plan:
        """Resolve each rule's chain over its modules, in rule order."""
        steps: list[Scheme] = []
        for key, names in self._assign(model).items():
            if not names or not self.rules[key]:
                continue
            include = [f"^{re.escape(n)}$" for n in names]
            selection = Selection(types=self.types, include=tuple(include), supported=self.types)
            for op, fixed in self.rules[key]:
                if isinstance(op, PruneOperator):
                    sparsity = op.sparsity if fixed else self.sparsity
                    allocation = "uniform" if fixed else self.allocation
                    steps.append(
                        OperatorScheme(
                            op, selection=selection, sparsity=sparsity, allocation=allocation
                        )
                    )
                else:
                    steps.append(OperatorScheme(op, selection=selection))
        if not steps:
            return Plan()
        return Compose(steps).plan(model, weights)

    def to_dict(self) -> dict[str, Any]:
        """The spec as given."""
        return dict(self._spec)

    def __repr__(self) -> str:
        return f"Rules({self._spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rules) and self._spec == other._spec

    __hash__ = None  # type: ignore[assignment]


def from_dict(spec: Mapping[str, Any]) -> Scheme:
    """Build a scheme from plain data (inverse of ``scheme.to_dict()``).

    ``{"type": "Prune", "sparsity": 0.9, ...}`` builds a built-in scheme;
    ``{"type": "Compose", "schemes": [...]}`` a composition; a mapping without
    ``"type"`` is a :class:`Rules` spec (regex keys, ``"*"`` default).

    Raises:
        ConfigError: unknown scheme type (valid names listed) or invalid options.

    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"a scheme spec must be a mapping, got {spec!r}")
    if "type" not in spec:
        return Rules(spec)
    options = dict(spec)
    kind = options.pop("type")
    if kind == "Compose":
        return Compose([from_dict(s) for s in options.get("schemes", [])])
    if kind == "Rules":
        return Rules(options)
    if kind not in SCHEMES:
        valid = ", ".join([*SCHEMES, "Compose", "Rules"])
        raise ConfigError(f"unknown scheme type {kind!r}; valid types: {valid}")
    try:
        return SCHEMES[kind](**options)
    except TypeError as exc:
        raise ConfigError(f"invalid options for scheme {kind!r}: {exc}") from None


def to_toml(scheme: Scheme) -> str:
    """The scheme's spec as TOML text."""
    import tomli_w

    return tomli_w.dumps(scheme.to_dict())


def from_toml(text: str) -> Scheme:
    """Build a scheme from TOML text (see :func:`from_dict`).

    Raises:
        ConfigError: malformed TOML (line and column named) or an invalid spec.

    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed scheme TOML: {exc}") from None
    return from_dict(data)
