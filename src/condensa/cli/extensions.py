"""Where run configs meet the extension registries: imported modules, objective options."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from condensa.errors import ConfigError
from condensa.objectives.registry import objective_options


def import_extensions(modules: Any, source: str) -> None:
    """Import the modules named by ``imports`` (they register their extensions on import).

    A run config is code: its ``imports`` run Python modules and its ``model.name`` may
    call a factory. Extensions are imported only from where the user points: a module
    name importable from the installed packages or ``PYTHONPATH`` (never from the
    current directory just because ``python -m condensa`` runs there), or a ``.py`` file
    path, relative to the config file's folder.

    Raises:
        ConfigError: not a list of module names, or a module that cannot be imported.

    """
    if modules is None:
        return
    if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
        raise ConfigError(f"{source}: imports must be a list of module names, got {modules!r}")
    for module in modules:
        try:
            if module.endswith(".py"):
                _import_file(module, source)
            else:
                with _without_current_directory():
                    importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure: name the module and why
            raise ConfigError(
                f"{source}: imports: cannot import {module!r} ({type(exc).__name__}: {exc}); "
                "give a module importable from the installed packages or PYTHONPATH, or a "
                ".py file path (relative to the config file)"
            ) from None


def _import_file(path: str, source: str) -> None:
    folder = Path(source).parent if Path(source).is_file() else Path.cwd()
    file = (folder / path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"no file {str(file)!r}")
    name = f"condensa_extension_{file.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


@contextmanager
def _without_current_directory() -> Iterator[None]:
    """``sys.path`` without the implicit current-directory entry (unless PYTHONPATH has it)."""
    here = os.getcwd()
    pointed = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    saved = list(sys.path)
    sys.path[:] = [
        p for p in sys.path if not (p in ("", ".") or os.path.abspath(p) == here) or here in pointed
    ]
    try:
        yield
    finally:
        sys.path[:] = saved


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
