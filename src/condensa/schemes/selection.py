"""Which tensors a scheme compresses: module types and include/exclude regexes on FQNs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from condensa.errors import ConfigError, SelectionError, UnsupportedModuleError

MODULE_TYPES: dict[str, type[nn.Module]] = {
    "Linear": nn.Linear,
    "Conv1d": nn.Conv1d,
    "Conv2d": nn.Conv2d,
    "Conv3d": nn.Conv3d,
    "Embedding": nn.Embedding,
    "LSTM": nn.LSTM,
}
"""Module types whose weights Condensa can compress, by name (LSTM: every ``weight_*``)."""

LINEAR_AND_CONV: tuple[str, ...] = ("Linear", "Conv1d", "Conv2d", "Conv3d")
CONV: tuple[str, ...] = ("Conv1d", "Conv2d", "Conv3d")


@dataclass(frozen=True)
class Target:
    """One compressible tensor of a model.

    Attributes:
        fqn: fully qualified name of the tensor, e.g. ``"layer1.0.conv1.weight"``.
        module_name: FQN of the owning module (``""`` for the root).
        param_name: attribute name on the module (``"weight"``).
        module: the owning module.
        aliases: ``(module, tensor name)`` of every other place in the model holding
            the same stored tensor (tied weights); compression applies there too, so
            tied modules keep seeing one tensor.

    """

    fqn: str
    module_name: str
    param_name: str
    module: nn.Module = field(compare=False, repr=False)
    aliases: tuple[tuple[nn.Module, str], ...] = field(default=(), compare=False, repr=False)

    @property
    def weight(self) -> torch.Tensor:
        """The tensor as the forward pass sees it (masks and casts applied)."""
        value = getattr(self.module, self.param_name)
        assert isinstance(value, torch.Tensor)
        return value


def _type_name(t: object) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, type):
        return t.__name__
    raise ConfigError(f"types must hold module classes or names, got {t!r}")


def _listify(value: object) -> tuple:
    if isinstance(value, (str, type)):
        return (value,)
    return tuple(value)  # type: ignore[arg-type]


def _patterns(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        raise ConfigError(f"{name} must be a regex or a list of regexes, got {value!r}")
    out = tuple(items)
    for pattern in out:
        if not isinstance(pattern, str):
            raise ConfigError(f"{name} must hold regex strings, got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"invalid regex {pattern!r} in {name}: {exc}") from None
    return out


@dataclass(frozen=True)
class Selection:
    """A query for targets: module types, then include/exclude regexes on module FQNs.

    Patterns are matched with :func:`re.search` against the owning module's FQN
    (``"features.0"``, ``"fc"``); anchor them (``r"^fc$"``) for exact names. A module
    is selected when its type is in ``types``, it matches some ``include`` pattern
    (or ``include`` is empty) and matches no ``exclude`` pattern.

    Attributes:
        types: module type names (see :data:`MODULE_TYPES`).
        include: regexes; empty selects every module of the given types.
        exclude: regexes removed after ``include``.
        supported: the types the calling scheme can handle; others raise.

    """

    types: tuple[str, ...] = LINEAR_AND_CONV
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    supported: tuple[str, ...] = LINEAR_AND_CONV
    skip_output_layer: bool = False

    def __post_init__(self) -> None:
        # direct construction (in custom schemes) accepts lists and single strings too
        object.__setattr__(self, "types", tuple(map(_type_name, _listify(self.types))))
        object.__setattr__(self, "include", _patterns(self.include, "include"))
        object.__setattr__(self, "exclude", _patterns(self.exclude, "exclude"))
        object.__setattr__(self, "supported", tuple(_listify(self.supported)))
        unknown = [t for t in self.types if t not in MODULE_TYPES]
        if unknown:
            raise UnsupportedModuleError(
                f"unknown module type(s) {unknown}; known: {', '.join(MODULE_TYPES)}"
            )

    @classmethod
    def make(
        cls,
        *,
        types: Sequence[type[nn.Module] | str] | None,
        include: Sequence[str] | str | None,
        exclude: Sequence[str] | str | None,
        supported: Sequence[str],
        default_types: Sequence[str] | None = None,
        skip_output_layer: bool = False,
    ) -> Selection:
        """Validate user options and build a selection.

        Raises:
            UnsupportedModuleError: a type in ``types`` is not in ``supported``.
            ConfigError: malformed patterns or types.

        """
        names = (
            tuple(default_types or supported) if types is None else tuple(map(_type_name, types))
        )
        if types is not None and not names:
            raise ConfigError("types must name at least one module type")
        unsupported = [n for n in names if n not in supported]
        if unsupported:
            raise UnsupportedModuleError(
                f"unsupported module type(s) {unsupported} for this scheme; "
                f"supported: {', '.join(supported)}"
            )
        return cls(
            types=names,
            include=_patterns(include, "include"),
            exclude=_patterns(exclude, "exclude"),
            supported=tuple(supported),
            skip_output_layer=bool(skip_output_layer),
        )

    def modules(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """``(fqn, module)`` of every selected module, in registration order.

        Raises:
            SelectionError: when an include/exclude pattern matches no module of the
                selected types, or when nothing at all is selected.

        """
        classes = tuple(MODULE_TYPES[n] for n in self.types)
        candidates = [(n, m) for n, m in model.named_modules() if isinstance(m, classes)]
        if self.skip_output_layer:
            output = last_module(model, ("Linear",))
            candidates = [(n, m) for n, m in candidates if n != output]
        unmatched = [
            p
            for p in self.include + self.exclude
            if not any(re.search(p, name) for name, _ in candidates)
        ]
        if unmatched:
            raise SelectionError(
                f"pattern(s) {unmatched} matched no {'/'.join(self.types)} module; "
                f"candidates: {[n for n, _ in candidates][:12]}"
            )
        chosen = [
            (name, module)
            for name, module in candidates
            if (not self.include or any(re.search(p, name) for p in self.include))
            and not any(re.search(p, name) for p in self.exclude)
        ]
        if not chosen:
            skipped = (
                " (the output layer is skipped: skip_output_layer=True)" * self.skip_output_layer
            )
            raise SelectionError(
                f"selection types={list(self.types)} include={list(self.include)} "
                f"exclude={list(self.exclude)} matched no module of "
                f"{type(model).__name__}{skipped}"
            )
        return chosen

    def targets(self, model: nn.Module) -> list[Target]:
        """The selected modules' weight tensors as :class:`Target` objects.

        A tensor shared by several modules (tied weights, e.g. an embedding and the
        decoder of a language model) is one target, listed under the first selected
        module that holds it, with the other holders as its ``aliases``: it is ranked
        once, compressed once, and every holder sees the compressed tensor.
        """
        holders: dict[int, list[tuple[str, nn.Module, str]]] = {}
        for name, module in model.named_modules():
            for param in _tensor_names(module):
                stored = _stored(module, param)
                if stored is not None:
                    holders.setdefault(id(stored), []).append((name, module, param))
        targets, seen = [], set()
        for name, module in self.modules(model):
            for param in weight_names(module):
                key = id(_stored(module, param))
                if key in seen:
                    continue
                seen.add(key)
                aliases = tuple(
                    (m, p) for n, m, p in holders.get(key, []) if (n, p) != (name, param)
                )
                fqn = f"{name}.{param}" if name else param
                targets.append(Target(fqn, name, param, module, aliases))
        return targets

    def to_dict(self) -> dict[str, list[str]]:
        """Plain data for scheme specs (only the options a user sets)."""
        return {
            "types": list(self.types),
            "include": list(self.include),
            "exclude": list(self.exclude),
        }


def _stored(module: nn.Module, name: str) -> object:
    """The stored Parameter behind ``module.<name>`` (its original when parametrized)."""
    if parametrize.is_parametrized(module, name):
        return module.parametrizations[name].original  # type: ignore[index,union-attr]
    return module._parameters.get(name)


def _tensor_names(module: nn.Module) -> list[str]:
    names = [n for n, p in module._parameters.items() if p is not None]
    if parametrize.is_parametrized(module):
        names += [n for n in module.parametrizations if n not in names]  # type: ignore[union-attr]
    return names


def weight_names(module: nn.Module) -> list[str]:
    """Names of a module's weight tensors: ``weight``, or every ``weight_*`` of an RNN."""
    names = list(module._parameters)
    if parametrize.is_parametrized(module):
        names += [n for n in module.parametrizations if n not in names]  # type: ignore[union-attr]
    if isinstance(module, nn.RNNBase):
        return [n for n in names if n.startswith("weight_")]
    return ["weight"]


def last_module(model: nn.Module, type_names: Sequence[str]) -> str | None:
    """FQN of the last-registered module of the given types (the usual output layer)."""
    classes = tuple(MODULE_TYPES[n] for n in type_names)
    names = [n for n, m in model.named_modules() if isinstance(m, classes)]
    return names[-1] if names else None
