"""Architectures: building a model from a name the *caller* gives, never from one a file gives.

A saved file may record the architecture it came from: a zoo name or a
``"package.module:function"`` factory path, with keyword arguments (plain JSON data).
:func:`condensa.load` rebuilds only zoo names automatically (a fixed registry inside
Condensa); a factory path read from a file is never imported: the caller names the
factory (``load(path, factory=...)``, ``condensa stats --factory ...``) or passes a
model. Sizes are checked on the ``meta`` device before real memory is allocated.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from condensa.errors import CondensaError, ConfigError


def record(
    zoo: str | None, factory: str | None, kwargs: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The architecture record saved in a file (checked; nothing is called).

    Raises:
        ConfigError: both or a malformed name, a factory that does not import or is not
            a Python class/function, kwargs it does not accept, or kwargs that are not
            plain JSON data.

    """
    if zoo is not None and factory is not None:
        raise ConfigError("record either zoo= or factory=, not both")
    out: dict[str, Any] = {"kwargs": dict(kwargs or {})}
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"kwargs must be plain JSON data: {exc}") from None
    if zoo is not None:
        from condensa import zoo as registry

        if zoo not in registry.MODELS:
            raise ConfigError(f"unknown zoo model {zoo!r}; valid: {', '.join(registry.MODELS)}")
        out["zoo"] = zoo
    if factory is not None:
        _bind(resolve_factory(factory), factory, out["kwargs"])
        out["factory"] = factory
    return out


def resolve_factory(name: str) -> Callable[..., Any]:
    """Import the caller-named ``"package.module:function"``; a class or Python function only.

    Raises:
        ConfigError: malformed, not importable, or a builtin/other callable (such as
            ``os:system``), which cannot build a model.

    """
    if not isinstance(name, str) or name.count(":") != 1 or not all(name.split(":")):
        raise ConfigError(f"factory must look like 'package.module:function', got {name!r}")
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import factory {name!r}: {type(exc).__name__}: {exc}") from None
    if not (inspect.isclass(factory) or inspect.isfunction(factory)):
        raise ConfigError(
            f"factory {name!r} is a {type(factory).__name__}, not a Python class or function "
            "that builds an nn.Module"
        )
    return factory


def _bind(factory: Callable[..., Any], name: str, kwargs: Mapping[str, Any]) -> None:
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid arguments for factory {name!r}: {exc}") from None
    except ValueError:  # pragma: no cover - no signature available
        pass


def build_model(name: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """A fresh model from a caller-given zoo name or ``"package.module:function"`` path.

    Raises:
        ConfigError: unknown zoo name (the valid ones listed), a factory path that does
            not import, or arguments the factory refuses.

    """
    kwargs = dict(kwargs or {})
    if ":" not in name:
        from condensa import zoo

        return zoo.get(name, **kwargs)
    factory = resolve_factory(name)
    _bind(factory, name, kwargs)
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid arguments for factory {name!r}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"factory {name!r} returned {type(model).__name__}, not an nn.Module")
    return model


def from_file(
    path: str, saved: Mapping[str, Any], factory: str | Callable[..., nn.Module] | None
) -> Callable[[], nn.Module]:
    """How to build the architecture of a file: a zoo name it records, or the caller's factory.

    Args:
        path: the file (for messages).
        saved: the file's architecture record (untrusted).
        factory: the caller's factory (a ``"package.module:function"`` path or a
            callable), called with the file's kwargs; None to use a zoo name.

    Returns:
        A zero-argument builder; call it under ``torch.device("meta")`` to size the model.

    Raises:
        CondensaError: the file names a factory and the caller gave none (loading never
            imports what a file names), or the record is malformed.

    """
    kwargs = saved.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise CondensaError(f"{path!r} is malformed: architecture kwargs {str(kwargs)[:80]!r}")
    if factory is not None:
        if isinstance(factory, str):
            return lambda: build_model(factory, kwargs)
        return lambda: _called(factory, kwargs)
    if "zoo" in saved:
        from condensa import zoo

        name = saved["zoo"]
        if not isinstance(name, str) or name not in zoo.MODELS:
            raise CondensaError(
                f"{path!r} names zoo model {str(name)[:60]!r}, which is not in the zoo; "
                f"valid: {', '.join(zoo.MODELS)}"
            )
        return lambda: zoo.get(name, **kwargs)
    if "factory" in saved:
        raise ConfigError(
            f"{path!r} was saved from factory {str(saved['factory'])[:80]!r}; loading never "
            "imports or calls what a file names. If you trust that factory, name it yourself: "
            "condensa.load(path, factory='package.module:function') or pass model=, "
            "or --factory on the command line"
        )
    raise ConfigError(
        f"{path!r} records no architecture: pass model= (an instance of the uncompressed "
        "architecture) or factory=, or save with zoo= / factory="
    )


def _called(factory: Callable[..., nn.Module], kwargs: Mapping[str, Any]) -> nn.Module:
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"factory returned {type(model).__name__}, not an nn.Module")
    return model


class BuildLimitError(CondensaError):
    """A builder asked for more tensors or bytes than the file that names it justifies."""


FACTORIES = frozenset(
    {
        "empty",
        "zeros",
        "ones",
        "full",
        "rand",
        "randn",
        "randint",
        "arange",
        "eye",
        "tensor",
        "empty_like",
        "zeros_like",
        "ones_like",
        "full_like",
        "rand_like",
        "randn_like",
        "new_empty",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_tensor",
        "empty_strided",
    }
)
"""Torch functions that create a tensor (counted against a build's limits)."""


class _Bounded(TorchFunctionMode):
    """Stop a model build (on ``meta``) once it creates too many tensors or bytes.

    A file's architecture record is untrusted: a zoo model with 200,000 layers would take
    hours to build even on the meta device. Counting tensor creations bounds the time
    and memory of the build by the file's own size, whatever the builder does.
    """

    def __init__(self, max_tensors: int, max_bytes: int) -> None:
        super().__init__()
        self.max_tensors, self.max_bytes = max_tensors, max_bytes
        self.tensors = self.bytes = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in FACTORIES and isinstance(out, torch.Tensor):
            self.tensors += 1
            self.bytes += out.numel() * out.element_size()
            if self.tensors > self.max_tensors or self.bytes > self.max_bytes:
                raise BuildLimitError(
                    f"more than {self.max_tensors:,} tensors or {self.max_bytes:,} bytes"
                )
        return out


def meta_state(
    build: Callable[[], nn.Module], *, max_tensors: int, max_bytes: int
) -> dict[str, tuple[tuple[int, ...], int]]:
    """``{state fqn: (shape, bytes)}`` of the model a builder makes, without allocating it.

    The build runs on the ``meta`` device and is stopped as soon as it has created more
    than ``max_tensors`` tensors or ``max_bytes`` bytes, so its time and memory are
    bounded by those limits, not by what a file claims.

    Raises:
        BuildLimitError: the builder went past a limit (the message names it).

    """
    with torch.device("meta"), _Bounded(max_tensors, max_bytes):
        model = build()
    return {
        k: (tuple(v.shape), v.numel() * v.element_size()) for k, v in model.state_dict().items()
    }
