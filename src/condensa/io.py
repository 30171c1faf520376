"""``save`` / ``load``: compact, versioned files holding tensors and plain data only.

The container is safetensors (no pickle anywhere; metadata is JSON text). A masked
tensor is stored as its kept values in the storage dtype (float32, float16, bfloat16,
or int8 with float32 per-channel scales) plus the kept positions, encoded as the
smallest of: nothing (dense), a bitmask, or split Golomb-Rice gap codes (near the
entropy bound at high sparsity; see ``benchmarks/storage.py``). Other tensors are
stored as they are. Loading never unpickles: the architecture comes from the
caller, or from a zoo name / ``package.module:factory`` path recorded at save time.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from condensa.errors import CondensaError, ConfigError
from condensa.functional.encoding import (
    best_rice_parameter,
    bitmask_decode,
    bitmask_encode,
    rice_decode,
    rice_encode,
)
from condensa.functional.quantize import DTYPES, quantize_int8
from condensa.masking import FakeCast, FakeQuantInt8, Mask, copy_model, masks, storage

FORMAT = "condensa"
VERSION = 1
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, **DTYPES}


def _architecture(zoo: str | None, factory: str | None, kwargs: Mapping[str, Any] | None) -> dict:
    if zoo is not None and factory is not None:
        raise ConfigError("record either zoo= or factory=, not both")
    out: dict[str, Any] = {"kwargs": dict(kwargs or {})}
    if zoo is not None:
        out["zoo"] = zoo
    if factory is not None:
        if ":" not in factory:
            raise ConfigError(f"factory must look like 'package.module:function', got {factory!r}")
        out["factory"] = factory
    json.dumps(out)  # kwargs must be plain data
    return out


def _encode_positions(mask: np.ndarray) -> tuple[str, dict[str, np.ndarray], dict[str, int]]:
    """The smallest of dense / bitmask / rice for a flat bool mask."""
    n, kept = mask.size, int(mask.sum())
    if kept == n:
        return "dense", {}, {}
    k = best_rice_parameter(mask)
    unary, rest = rice_encode(mask, k)
    bitmask = bitmask_encode(mask)
    if unary.nbytes + rest.nbytes < bitmask.nbytes:
        return "rice", {"unary": unary, "rest": rest}, {"k": k}
    return "bitmask", {"bits": bitmask}, {}


def _decode_positions(
    kind: str, parts: Mapping[str, np.ndarray], info: Mapping[str, Any]
) -> np.ndarray:
    n, kept = int(info["numel"]), int(info["kept"])
    if kind == "dense":
        return np.ones(n, dtype=bool)
    if kind == "bitmask":
        return bitmask_decode(parts["bits"], n)
    if kind == "rice":
        return rice_decode(parts["unary"], parts["rest"], int(info["k"]), n, kept)
    raise ConfigError(f"unknown position encoding {kind!r}")


def save(
    model: nn.Module,
    path: str | Path,
    *,
    zoo: str | None = None,
    factory: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` compactly to ``path`` (written atomically: a crash leaves the old file).

    Args:
        model: a compressed (or plain) model.
        path: destination, conventionally ``*.condensa``.
        zoo: zoo name to record so :func:`load` can rebuild the architecture.
        factory: or a ``"package.module:function"`` path to record instead.
        kwargs: keyword arguments for the zoo model or factory.

    Returns:
        The path written.

    """
    from safetensors.numpy import save_file

    path = Path(path)
    found_masks = masks(model)
    tensors: dict[str, np.ndarray] = {}
    entries: dict[str, dict[str, Any]] = {}
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if isinstance(module, (parametrize.ParametrizationList, Mask, FakeCast, FakeQuantInt8)):
                continue
            names = list(module._parameters) + list(module._buffers)
            if parametrize.is_parametrized(module):
                names += list(cast(nn.ModuleDict, module.parametrizations))
            for name in dict.fromkeys(names):
                value = getattr(module, name)
                if not isinstance(value, torch.Tensor) or (
                    name in module._buffers and name not in module.state_dict()
                ):
                    continue
                fqn = f"{module_name}.{name}" if module_name else name
                entries[fqn] = _store(
                    fqn, module, name, value.detach().cpu(), found_masks.get(fqn), tensors
                )
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "architecture": json.dumps(_architecture(zoo, factory, kwargs), separators=(",", ":")),
        "tensors": json.dumps(entries, separators=(",", ":")),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def _store(
    fqn: str,
    module: nn.Module,
    name: str,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    tensors: dict[str, np.ndarray],
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "shape": list(value.shape),
        "dtype": str(value.dtype).removeprefix("torch."),
    }
    flat_mask = (
        mask.reshape(-1).cpu().numpy() if mask is not None else np.ones(value.numel(), dtype=bool)
    )
    kept_values = value.reshape(-1)[torch.from_numpy(flat_mask)]
    kind, parts, extra = _encode_positions(flat_mask)
    info.update({"positions": kind, "numel": value.numel(), "kept": int(flat_mask.sum()), **extra})
    for key, part in parts.items():
        tensors[f"{fqn}::{key}"] = part
    stored = storage(module, name) if parametrize.is_parametrized(module, name) else None
    info["storage"] = stored.dtype if stored is not None else info["dtype"]
    if info["storage"] == "int8":
        plist = cast(nn.ModuleList, cast(nn.ModuleDict, module.parametrizations)[name])
        axis = next(int(p.axis) for p in plist if isinstance(p, FakeQuantInt8))
        q, scale = quantize_int8(value, axis)
        tensors[f"{fqn}::values"] = q.reshape(-1)[torch.from_numpy(flat_mask)].numpy()
        tensors[f"{fqn}::scale"] = scale.numpy()
        info["axis"] = axis
    elif info["storage"] == "bfloat16":
        # numpy has no bfloat16: keep its raw 16 bits
        tensors[f"{fqn}::values"] = kept_values.to(torch.bfloat16).view(torch.int16).numpy()
    else:
        tensors[f"{fqn}::values"] = kept_values.to(
            TORCH_DTYPES.get(info["storage"], value.dtype)
        ).numpy()
    if parametrize.is_parametrized(module, name):
        plist = cast(nn.ModuleList, cast(nn.ModuleDict, module.parametrizations)[name])
        info["parametrizations"] = [_describe(p) for p in plist]
    return info


def _describe(p: nn.Module) -> dict[str, Any]:
    if isinstance(p, Mask):
        return {"type": "mask"}
    if isinstance(p, FakeCast):
        return {"type": "cast", "dtype": p.dtype}
    if isinstance(p, FakeQuantInt8):
        return {"type": "int8", "axis": int(p.axis)}
    raise ConfigError(f"cannot save the parametrization {type(p).__name__} (not Condensa's)")


def build_model(name: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """A fresh model from a zoo name or a ``"package.module:function"`` factory path.

    Raises:
        ConfigError: unknown zoo name (the valid ones listed), a factory path that does
            not import, or arguments the factory refuses.

    """
    kwargs = dict(kwargs or {})
    if ":" not in name:
        from condensa import zoo

        return zoo.get(name, **kwargs)
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import factory {name!r}: {type(exc).__name__}: {exc}") from None
    if not callable(factory):
        raise ConfigError(f"factory {name!r} is not callable")
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid arguments for factory {name!r}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"factory {name!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _build(architecture: Mapping[str, Any]) -> nn.Module:
    kwargs = dict(architecture.get("kwargs", {}))
    if "zoo" in architecture:
        return build_model(architecture["zoo"], kwargs)
    if "factory" in architecture:
        return build_model(architecture["factory"], kwargs)
    raise ConfigError(
        "the file records no architecture: pass model= (an instance of the uncompressed "
        "architecture) or save with zoo= / factory="
    )


def read(path: str | Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The metadata and raw arrays of a Condensa file (no model is built).

    Raises:
        CondensaError: missing, truncated or corrupt file, or not a Condensa file
            (a pickle is refused without being executed).
        ConfigError: a file from a newer format version.

    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CondensaError(f"no file at {str(path)!r}")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise CondensaError(
            f"{str(path)!r} is not a readable Condensa file (truncated, corrupt, or another "
            f"format such as a pickle, which is never loaded): {exc}"
        ) from None
    if metadata.get("format") != FORMAT:
        raise CondensaError(f"{str(path)!r} is a safetensors file but not a Condensa one")
    if int(metadata.get("version", "0")) > VERSION:
        raise ConfigError(
            f"{str(path)!r} has format version {metadata['version']}; this Condensa reads "
            f"up to {VERSION}: upgrade condensa"
        )
    return metadata, arrays


def load(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a model saved by :func:`save`, masks and quantization included.

    Args:
        path: the file.
        model: an instance of the uncompressed architecture (copied, not modified);
            optional when the file records a zoo name or factory.

    Returns:
        The compressed model, with the same outputs as the saved one (bit-exact for
        float32 and float16 storage).

    Raises:
        CondensaError / ConfigError: see :func:`read`; keys that do not match the model.

    """
    metadata, arrays = read(path)
    entries = json.loads(metadata["tensors"])
    target = (
        copy_model(model) if model is not None else _build(json.loads(metadata["architecture"]))
    )
    state = target.state_dict()
    expected = {k.replace(".parametrizations.", ".").replace(".original", "") for k in state}
    expected = {k for k in expected if not k.endswith((".mask", ".code", ".axis"))}
    missing, unexpected = sorted(expected - set(entries)), sorted(set(entries) - expected)
    if missing or unexpected:
        raise ConfigError(
            f"{str(path)!r} does not match {type(target).__name__}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    with torch.no_grad():
        for fqn, info in entries.items():
            module_name, _, name = fqn.rpartition(".")
            module = target.get_submodule(module_name)
            value, mask = _restore(fqn, info, arrays)
            if parametrize.is_parametrized(module, name):
                parametrize.remove_parametrizations(module, name, leave_parametrized=False)
            getattr(module, name).copy_(value.to(getattr(module, name).dtype))
            for spec in info.get("parametrizations", []):
                parametrize.register_parametrization(
                    module, name, _parametrization(spec, mask.reshape(value.shape))
                )
    return target


def _parametrization(spec: Mapping[str, Any], mask: torch.Tensor) -> nn.Module:
    kind = spec.get("type")
    if kind == "mask":
        return Mask(mask)
    if kind == "cast":
        return FakeCast(spec["dtype"])
    if kind == "int8":
        return FakeQuantInt8(int(spec["axis"]))
    raise ConfigError(f"unknown parametrization {kind!r} in the file")


def _restore(fqn: str, info: Mapping[str, Any], arrays: Mapping[str, np.ndarray]):  # type: ignore[no-untyped-def]
    parts = {
        key.split("::", 1)[1]: arr for key, arr in arrays.items() if key.startswith(f"{fqn}::")
    }
    flat_mask = _decode_positions(info["positions"], parts, info)
    dtype = TORCH_DTYPES.get(info["dtype"], torch.float32)
    values = parts["values"]
    if info["storage"] == "int8":
        scale = torch.from_numpy(parts["scale"])
        full_q = torch.zeros(info["numel"], dtype=torch.int8)
        full_q[torch.from_numpy(flat_mask)] = torch.from_numpy(values)
        dense = (full_q.reshape(info["shape"]).float() * scale).to(dtype)
        return dense, torch.from_numpy(flat_mask)
    kept = torch.from_numpy(values)
    if info["storage"] == "bfloat16":
        kept = kept.view(torch.bfloat16)
    dense = torch.zeros(info["numel"], dtype=dtype)
    dense[torch.from_numpy(flat_mask)] = kept.to(dtype)
    return dense.reshape(info["shape"]), torch.from_numpy(flat_mask)
