"""``save`` / ``load``: compact, versioned files holding tensors and plain data only.

The container is safetensors (no pickle anywhere; metadata is JSON text). A masked
tensor is stored as its kept values in the storage dtype (float32, float16, bfloat16,
or int8 with float32 per-channel scales) plus the kept positions, encoded as the
smallest of: nothing (dense), a bitmask, or split Golomb-Rice gap codes (near the
entropy bound at high sparsity; see ``benchmarks/storage.py``). Other tensors are
stored as they are.

A file is data, never code: loading never unpickles, never imports or calls what a
file names (only the built-in zoo is rebuilt from a recorded name; any other factory
is named by the caller), and checks every size the file claims against its bytes and
the model's shapes before allocating (see :mod:`condensa.filecheck`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from condensa import structure
from condensa.architecture import BuildLimitError, from_file, meta_state, record
from condensa.architecture import build_model as build_model  # public: io.build_model
from condensa.atomic import write_bytes
from condensa.errors import CondensaError, ConfigError
from condensa.filecheck import (
    STORAGE_ARRAY_DTYPES,
    Entry,
    build_limit,
    check_shapes,
    codec_of,
    decode_positions,
    encode_positions,
    parse_entries,
    parse_metadata,
    parse_tied,
    too_large,
)
from condensa.formats import StoredFormat, decode_plain, encode_plain, format_named, formats
from condensa.masking import (
    copy_model,
    masks,
    register,
    storage,
    stored_tensor,
    storing_format,
)

FORMAT = "condensa"
VERSION = 1
TORCH_DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in STORAGE_ARRAY_DTYPES}
"""Every dtype a file may store, by name."""


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
        factory: or a ``"package.module:function"`` path to record instead (a Python
            class or function; :func:`load` never imports it by itself: the reader
            names it again with ``load(path, factory=...)``).
        kwargs: keyword arguments for the zoo model or factory (plain JSON data).

    Returns:
        The path written.

    Raises:
        ConfigError: an unknown zoo name, a factory that is not an importable class or
            function, or kwargs it does not accept; nothing is written.
        OSError: the file could not be written, e.g. a full disk (an existing file at
            ``path`` is left as it was).

    """
    from safetensors.numpy import save as serialize

    path = Path(path)
    architecture = record(zoo, factory, kwargs)
    found_masks = masks(model)
    tensors: dict[str, np.ndarray] = {}
    entries: dict[str, dict[str, Any]] = {}
    stored_as: dict[int, str] = {}  # id of a stored tensor -> the fqn it was stored under
    tied: dict[str, str] = {}  # tied weights (an LM head sharing the embedding) stored once
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if isinstance(module, (parametrize.ParametrizationList, StoredFormat)):
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
                identity = id(stored_tensor(module, name))
                if identity in stored_as:
                    tied[fqn] = stored_as[identity]
                    continue
                stored_as[identity] = fqn
                entries[fqn] = _store(
                    fqn, module, name, value.detach().cpu(), found_masks.get(fqn), tensors
                )
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "architecture": json.dumps(architecture, separators=(",", ":")),
        "tensors": json.dumps(entries, separators=(",", ":")),
        "structure": json.dumps(structure.record(model), separators=(",", ":")),
        "tied": json.dumps(tied, separators=(",", ":")),
    }
    # serialized in memory, then written by Python: a full disk is a clean OSError and
    # the previous file stays (safetensors' own writer reports it as another error type)
    write_bytes(path, serialize(tensors, metadata=metadata))
    return path


def _store(
    fqn: str,
    module: nn.Module,
    name: str,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    tensors: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Write the arrays of one tensor into ``tensors``; return its JSON record."""
    info: dict[str, Any] = {
        "shape": list(value.shape),
        "dtype": str(value.dtype).removeprefix("torch."),
    }
    flat_mask = (
        mask.reshape(-1).cpu().numpy() if mask is not None else np.ones(value.numel(), dtype=bool)
    )
    kind, parts, extra = encode_positions(flat_mask)
    info.update({"positions": kind, "numel": value.numel(), "kept": int(flat_mask.sum()), **extra})
    if parametrize.is_parametrized(module, name):
        plist = cast(nn.ModuleList, cast(nn.ModuleDict, module.parametrizations)[name])
        info["parametrizations"] = [_spec_of(p) for p in plist]
    deciding = storing_format(module, name)  # the same rule load applies (codec_of)
    keep = torch.from_numpy(flat_mask)
    if deciding is not None and deciding.codec:
        info["storage"] = deciding.kind
        values, extra = deciding.encode(value, keep)
        parts.update(values)
        info.update(extra)
    else:
        info["storage"] = storage(module, name, value).dtype
        parts["values"] = encode_plain(value.reshape(-1)[keep], info["storage"])
    for key, part in parts.items():
        tensors[f"{fqn}::{key}"] = part
    return info


def _spec_of(p: nn.Module) -> dict[str, Any]:
    if isinstance(p, StoredFormat) and format_named(p.kind) is type(p):
        return {"type": p.kind, **p.spec()}
    raise ConfigError(
        f"cannot save the parametrization {type(p).__name__} (not a registered stored "
        f"format; registered: {', '.join(f.__name__ for f in formats())})"
    )


def read(path: str | Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The metadata and raw arrays of a Condensa file (no model is built, nothing is called).

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
        # safetensors checks the header's offsets against the file's size before reading
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except MemoryError:
        raise CondensaError(f"{str(path)!r} claims more memory than is available") from None
    except Exception as exc:  # safetensors raises its own error types
        raise CondensaError(
            f"{str(path)!r} is not a readable Condensa file (truncated, corrupt, or another "
            f"format such as a pickle, which is never loaded): {exc}"
        ) from None
    if metadata.get("format") != FORMAT:
        raise CondensaError(f"{str(path)!r} is a safetensors file but not a Condensa one")
    version = metadata.get("version", "0")
    if not version.isdigit() or len(version) > 6:
        raise CondensaError(f"{str(path)!r} is malformed: format version {version[:20]!r}")
    if int(version) > VERSION:
        raise ConfigError(
            f"{str(path)!r} has format version {version}; this Condensa reads "
            f"up to {VERSION}: upgrade condensa"
        )
    return metadata, arrays


def _tensor_names(state_keys: Any) -> dict[str, str]:
    """``{state_dict key: tensor fqn}`` with parametrization internals mapped or dropped."""
    buffers = tuple(f".{f.key}" for f in formats())
    out = {}
    for key in state_keys:
        if key.endswith(buffers) and ".parametrizations." in key:
            continue
        out[key] = key.replace(".parametrizations.", ".").replace(".original", "")
    return out


def _stored_shapes(
    state: Mapping[str, tuple[int, ...]], tied: Mapping[str, str]
) -> dict[str, tuple[int, ...]]:
    """``{tensor fqn: shape}`` a file must store for a model's state (tied copies left out)."""
    names = _tensor_names(state)
    return {names[k]: shape for k, shape in state.items() if k in names and names[k] not in tied}


def load(
    path: str | Path,
    model: nn.Module | None = None,
    *,
    factory: str | Any | None = None,
    max_bytes: int | None = None,
) -> nn.Module:
    """Rebuild a model saved by :func:`save`, masks and quantization included.

    Loading runs no code named by the file: the architecture is ``model`` (copied), or
    built by the caller's ``factory`` with the file's keyword arguments, or, only when
    the file names one, a model of the built-in zoo. Every size the file claims is
    checked against its bytes and against the architecture's shapes (built first on
    the ``meta`` device) before memory is allocated.

    Args:
        path: the file.
        model: an instance of the uncompressed architecture (copied, not modified).
        factory: or a ``"package.module:function"`` path (or callable) building it,
            called with the kwargs recorded in the file. Needed when the file was
            saved with ``factory=``: a factory named by a file is never imported.
        max_bytes: most bytes the loaded model may take; default: the larger of 1 GiB
            and 1024x the file's size (and, with ``model=``, that model's own size).

    Time and memory: for a file of N bytes, nothing larger than ``max_bytes`` is
    allocated, and before anything is built every tensor's claimed size is checked
    against the file's bytes and ``max_bytes``; an architecture built from a zoo name
    or factory is first built on the ``meta`` device and stopped after at most
    ``4 * tensors in the file + 256`` tensor creations, so a file cannot buy a long
    build. Decoding is linear in the file's bytes and the model's elements.

    Returns:
        The compressed model, with the same outputs as the saved one (bit-exact for
        float32 and float16 storage).

    Raises:
        CondensaError: see :func:`read`; a malformed record (sizes that contradict the
            bytes), tensors that do not match the architecture's names and shapes, or
            a model larger than ``max_bytes``.
        ConfigError: the file names a factory and none was given, or no architecture.

    """
    name = str(path)
    metadata, arrays = read(path)
    saved, table = parse_metadata(name, metadata)
    entries = parse_entries(name, table, arrays)
    tied = parse_tied(name, metadata, entries)
    layout = structure.parse(name, metadata.get("structure"))
    file_shapes = {fqn: tuple(e.shape) for fqn, e in entries.items()}
    file_shapes.update({fqn: file_shapes[source] for fqn, source in tied.items()})
    on_disk = Path(path).stat().st_size
    limit = max_bytes if max_bytes is not None else build_limit(on_disk)
    if model is not None and max_bytes is None:  # the caller's model exists at its size
        limit = max(limit, sum(t.numel() * t.element_size() for t in model.state_dict().values()))
    # every size the file claims is checked before anything is built or allocated
    claimed = sum(e.dense_bytes for e in entries.values())
    if claimed > limit:
        raise too_large(name, claimed, on_disk, limit)
    if model is not None:
        target = copy_model(model)
        structure.apply(name, target, layout, file_shapes)
    else:
        raw = from_file(name, saved, factory)
        # a builder may create a few tensors the file does not store (non-persistent
        # buffers, temporaries); far more means the file's sizes are not its bytes'
        tensors = 4 * len(entries) + 256
        try:
            full = meta_state(raw, max_tensors=tensors, max_bytes=limit)
            state = meta_state(
                _shaped(raw, name, layout, file_shapes), max_tensors=tensors, max_bytes=limit
            )
        except BuildLimitError as exc:
            raise CondensaError(
                f"{name!r} describes an architecture whose build creates {exc} from "
                f"{on_disk:,} bytes on disk ({len(entries)} stored tensors); stopped before "
                "building it: pass max_bytes= or model= to load it anyway"
            ) from None
        check_shapes(
            name,
            entries,
            _stored_shapes({k: shape for k, (shape, _) in state.items()}, tied),
            "its architecture",
        )
        # the architecture is built at full size before the recorded structure shrinks it
        claimed = max(claimed, sum(size for _, size in full.values()))
        if claimed > limit:
            raise too_large(name, claimed, on_disk, limit)
        target = _shaped(raw, name, layout, file_shapes)()
    shapes = _stored_shapes({k: tuple(v.shape) for k, v in target.state_dict().items()}, tied)
    check_shapes(name, entries, shapes, type(target).__name__)
    for fqn, source in tied.items():
        module_name, _, tensor_name = fqn.rpartition(".")
        source_module, _, source_name = source.rpartition(".")
        try:
            shared = stored_tensor(target.get_submodule(module_name), tensor_name) is (
                stored_tensor(target.get_submodule(source_module), source_name)
            )
        except AttributeError:
            shared = False
        if not shared:
            raise ConfigError(
                f"{name!r} stores {fqn!r} tied to {source!r}, but {type(target).__name__} "
                "does not tie them (load it into the architecture it was saved from)"
            )
    with torch.no_grad():
        for fqn, entry in entries.items():
            module_name, _, tensor_name = fqn.rpartition(".")
            module = target.get_submodule(module_name)
            value, mask = _restore(name, entry)
            if parametrize.is_parametrized(module, tensor_name):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=False)
            getattr(module, tensor_name).copy_(value.to(getattr(module, tensor_name).dtype))
            for spec in entry.parametrizations:
                stored = format_named(spec["type"])
                assert stored is not None  # checked by parse_entries
                parametrization = stored.from_parts(spec, mask.reshape(value.shape), entry.arrays)
                register(module, tensor_name, parametrization)
        for fqn, source in tied.items():  # the tied holder sees the source's compression too
            alias_name, _, alias_tensor = fqn.rpartition(".")
            source_name, _, source_tensor = source.rpartition(".")
            holder = target.get_submodule(source_name)
            alias = target.get_submodule(alias_name)
            if parametrize.is_parametrized(holder, source_tensor):
                plist = cast(
                    nn.ModuleList, cast(nn.ModuleDict, holder.parametrizations)[source_tensor]
                )
                for held in plist:
                    parametrize.register_parametrization(alias, alias_tensor, held)
    return target


def _shaped(
    build: Any, name: str, layout: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]
) -> Any:
    """``build`` followed by the file's recorded structure (a thinned model's shapes)."""

    def shaped() -> nn.Module:
        model = build()
        structure.apply(name, model, layout, shapes)
        return model

    return shaped


def _restore(path: str, entry: Entry) -> tuple[torch.Tensor, torch.Tensor]:
    """The dense tensor and its flat keep-mask, from checked parts."""
    flat_mask = torch.from_numpy(decode_positions(path, entry))
    dtype = TORCH_DTYPES[entry.dtype]
    codec = codec_of(entry.parametrizations)
    if codec is not None:
        stored, spec = codec
        return stored.decode(spec, entry.arrays, entry.shape, flat_mask, dtype), flat_mask
    dense = torch.zeros(entry.numel, dtype=dtype)
    dense[flat_mask] = decode_plain(entry.arrays["values"], entry.storage).to(dtype)
    return dense.reshape(entry.shape), flat_mask
