"""The compression methods by name: one registry read by the API, the CLI and the docs.

Each entry is a class whose constructor takes the trainer first; its keyword defaults
are the defaults of every run (API, CLI, docs read the same signature). A method
registered from outside may add ``defaults`` that override its class's. ``distill``
may be given as plain data (``true`` or a table, as in a TOML config): it becomes a
:class:`~condensa.optim.distill.Distillation`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from condensa.errors import ConfigError
from condensa.optim.distill import Distillation
from condensa.optim.finetune import DC, FineTune
from condensa.optim.gmp import GMP
from condensa.optim.lc import LC
from condensa.optim.oneshot import GPTQ, SparseGPT, Wanda
from condensa.optim.trainer import Trainer


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: its class, options over its class's defaults, a summary."""

    cls: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""


def _registry() -> dict[str, MethodEntry]:
    return {
        "gmp": MethodEntry(GMP, {}, "gradual magnitude pruning (cubic ramp) then fine-tuning"),
        "lc": MethodEntry(LC, {}, "learning-compression (L-C)"),
        "finetune": MethodEntry(FineTune, {}, "direct compression then masked fine-tuning"),
        "dc": MethodEntry(DC, {}, "direct compression only (no training)"),
        "wanda": MethodEntry(Wanda, {}, "one-shot pruning by |w| x input norm (no training)"),
        "sparsegpt": MethodEntry(
            SparseGPT, {}, "one-shot pruning with second-order reconstruction (no training)"
        ),
        "gptq": MethodEntry(GPTQ, {}, "one-shot quantization with error compensation"),
    }


METHODS: dict[str, MethodEntry] = _registry()
"""Methods by name (the CLI's ``method.name``); extend with :func:`register_method`."""
DEFAULT_METHOD = "gmp"
"""The method runs use when none is named: the best measured (docs/benchmarks.md,
*Accuracy recovery*). Distillation stays off by default: it did not help any method
on the LeNets there."""


def register_method(
    name: str, cls: type, defaults: Mapping[str, Any] | None = None, summary: str = ""
) -> None:
    """Make ``cls`` available as ``method=name`` in the API and ``method.name`` in configs.

    ``cls(trainer, **options)`` must build an object with ``compress(model, scheme)``
    returning a :class:`~condensa.optim.CompressionResult`.

    Raises:
        ConfigError: a bad name, a name already taken, or a class without ``compress``.

    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a method name must be an identifier, got {name!r}")
    if name in METHODS:
        raise ConfigError(f"method {name!r} is already registered")
    if not callable(getattr(cls, "compress", None)):
        raise ConfigError(f"{cls!r} has no compress(model, scheme) method")
    METHODS[name] = MethodEntry(cls, dict(defaults or {}), summary)


def options_of(name: str) -> list[str]:
    """The option names ``method.options`` accepts for method ``name``."""
    names: list[str] = []
    for cls in entry(name).cls.__mro__:  # ``**options`` passed on to a base class's init
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(vars(cls)["__init__"]).parameters.values()
        names += [
            p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return [n for n in dict.fromkeys(names) if n not in ("self", "trainer")]


def entry(name: str) -> MethodEntry:
    """The registered method ``name``.

    Raises:
        ConfigError: unknown name (the valid ones listed).

    """
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]


def build_method(
    name: str, trainer: Trainer, options: Mapping[str, Any] | None = None, *, metric: str
) -> Any:
    """``METHODS[name]`` built on ``trainer`` from its defaults updated by ``options``.

    Raises:
        ConfigError: unknown method or option (the valid ones listed), or a bad value.

    """
    found = entry(name)
    merged = {**found.defaults, **dict(options or {})}
    accepted = options_of(name)
    unknown = sorted(set(merged) - set(accepted) - {"metric"})
    if unknown:
        hidden = ("metric", "callback", "checkpoint")
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for method {name!r}; valid: "
            + ", ".join(a for a in accepted if a not in hidden)
        )
    if "distill" in merged and not isinstance(merged["distill"], Distillation):
        merged["distill"] = Distillation.from_dict(merged["distill"])
    if "metric" in accepted:
        merged["metric"] = metric
    try:
        return found.cls(trainer, **merged)
    except TypeError as exc:
        raise ConfigError(f"method {name!r}: {exc}") from None
