"""The objective registry: one name per objective class, its options its dataclass fields.

An objective is a dataclass whose instances are called as
``objective(model, example_inputs) -> Measurement | float`` (the search maximizes the
score: a :class:`~condensa.objectives.Measurement` with ``higher_is_better=False`` is
minimized). Registering it under a name makes it available everywhere by that name:
``[objective] name = "..."`` in run configs (its fields are the config keys, checked
by its constructor), :func:`build_objective`, and the list of valid names in errors and
docs. A class may declare ``monotone: ClassVar[bool] = True`` when its score never
falls as sparsity grows (the search then skips dominated sparsities).

Example:
    >>> from dataclasses import dataclass
    >>> @register_objective("params")
    ... @dataclass(frozen=True)
    ... class Params:
    ...     scale: float = 1.0
    ...     def __call__(self, model, example_inputs=None):
    ...         n = sum(int((p != 0).sum()) for p in model.parameters())
    ...         return Measurement(self.scale * n, "weights", higher_is_better=False)
    >>> build_objective("params", {"scale": 2.0})
    Params(scale=2.0)

"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from condensa.errors import ConfigError

T = TypeVar("T")

_OBJECTIVES: dict[str, type] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def register_objective(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a dataclass objective under ``name``.

    Raises:
        ConfigError: a malformed or taken name, a class that is not a dataclass, or
            instances that are not callable.

    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"objective name {name!r} must be lower-case letters, digits, '-' or '_', "
            "starting with a letter"
        )

    def register(cls: type[T]) -> type[T]:
        if name in _OBJECTIVES and _OBJECTIVES[name] is not cls:
            raise ConfigError(
                f"objective name {name!r} is taken by {_OBJECTIVES[name].__qualname__}"
            )
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ConfigError(f"objective {name!r}: {cls!r} is not a dataclass")
        if not any("__call__" in vars(k) for k in cls.__mro__ if k is not object):
            raise ConfigError(f"objective {name!r}: {cls.__qualname__} defines no __call__")
        _OBJECTIVES[name] = cls
        return cls

    return register


def objective_names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(_OBJECTIVES)


def objective_class(name: str) -> type:
    """The class registered under ``name``.

    Raises:
        ConfigError: no objective has that name (the valid names are listed).

    """
    try:
        return _OBJECTIVES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown objective {name!r}; valid: {', '.join(_OBJECTIVES)} "
            "(or one registered with condensa.objectives.register_objective)"
        ) from None


def objective_options(name: str) -> dict[str, Any]:
    """The options of objective ``name``: its init fields and their defaults."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(objective_class(name)):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = dataclasses.MISSING
    return out


def build_objective(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """An instance of objective ``name`` with ``options`` (checked by its constructor).

    Raises:
        ConfigError: an unknown name or option (the valid ones are listed), or a value
            the objective refuses.

    """
    options = dict(options or {})
    valid = objective_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"objective {name!r} has no option {', '.join(map(repr, unknown))}; valid: "
            + (", ".join(valid) or "none")
        )
    try:
        return objective_class(name)(**options)
    except TypeError as exc:
        raise ConfigError(f"objective {name!r}: {exc}") from None
