"""Where run configs meet the extension registries: imported modules, objective options."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from condensa.errors import ConfigError
from condensa.objectives.registry import objective_options


def import_extensions(modules: Any, source: str) -> None:
    """Import the modules named by ``imports`` (they register their extensions on import).

    Raises:
        ConfigError: not a list of module names, or a module that cannot be imported.

    """
    if modules is None:
        return
    if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
        raise ConfigError(f"{source}: imports must be a list of module names, got {modules!r}")
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure: name the module and why
            raise ConfigError(
                f"{source}: imports: cannot import {module!r} ({type(exc).__name__}: {exc}); "
                "it must be importable from the Python path (PYTHONPATH)"
            ) from None


def objective_spec(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The objective's name and options from ``[objective]``.

    The timing keys (``batch_size``, ``threads``, ``repeats``, ``warmup``) also set the
    speed comparison in the report, so they are accepted for every objective and passed
    to those that have them (``threads = 0``: unchanged, None); any other key must be
    an option (dataclass field) of the objective named.

    Raises:
        ConfigError: a key that is neither (the valid keys are listed).

    """
    from condensa.cli.config import SCHEMA  # the keys every objective section accepts

    spec = config["objective"]
    name = spec["name"]
    options = objective_options(name)
    unknown = sorted(k for k in spec if k not in SCHEMA["objective"] and k not in options)
    if unknown:
        valid = ", ".join(dict.fromkeys([*SCHEMA["objective"], *options]))
        raise ConfigError(
            f"unknown key objective.{unknown[0]} for objective {name!r}; valid keys of "
            f"[objective]: {valid}"
        )
    chosen = {k: v for k, v in spec.items() if k in options}
    if chosen.get("threads") == 0:
        chosen["threads"] = None
    return name, chosen
