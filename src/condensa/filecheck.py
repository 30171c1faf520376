"""What a Condensa file may claim: every size and name is checked before anything is allocated.

A ``.condensa`` file is untrusted input. Its JSON metadata claims, per tensor, a shape,
a number of elements, how many entries are kept, how positions are encoded and how
values are stored; its arrays hold the bytes. :func:`parse_entries` checks each claim
against the others and against the arrays that are really in the file, so decoding
allocates only what the file's bytes and the model's shapes justify. Anything
malformed is a :class:`~condensa.errors.CondensaError` naming the tensor and the claim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from condensa.errors import CondensaError, ConfigError
from condensa.formats import (
    PLAIN_ARRAY_DTYPES,
    StoredFormat,
    format_named,
    storing,
    valid_specs,
)
from condensa.functional.encoding import (
    best_rice_parameter,
    bitmask_decode,
    bitmask_encode,
    rice_decode,
    rice_encode,
)
from condensa.structure import json_object

STORAGE_ARRAY_DTYPES: dict[str, np.dtype] = dict(PLAIN_ARRAY_DTYPES)
"""Plain storage dtype name -> the numpy dtype its ``values`` array must have."""

TENSOR_DTYPES = tuple(STORAGE_ARRAY_DTYPES)
"""Dtypes a saved tensor may be restored to."""

ELEMENT_BYTES = {name: dtype.itemsize for name, dtype in STORAGE_ARRAY_DTYPES.items()}
MAX_RICE_K = 40
"""Largest Rice parameter accepted (gaps of up to 2**40 entries per remainder)."""


def _fail(path: str, fqn: str, claim: str) -> CondensaError:
    return CondensaError(f"{path!r} is malformed: tensor {fqn!r} {claim}")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Entry:
    """One stored tensor, every claim checked.

    Attributes:
        fqn: the tensor's fully qualified name.
        shape: its shape; ``numel`` its number of elements.
        dtype: the dtype it is restored to.
        storage: how its kept values are stored (a plain dtype, or the kind of the
            format that encodes them).
        positions: ``"dense"``, ``"bitmask"`` or ``"rice"``.
        kept: number of stored (kept) entries.
        k: the Rice parameter (``"rice"`` only).
        parametrizations: the parametrization specs to register, checked.
        arrays: this tensor's arrays from the file, by part name.

    """

    fqn: str
    shape: tuple[int, ...]
    numel: int
    dtype: str
    storage: str
    positions: str
    kept: int
    k: int
    parametrizations: tuple[dict[str, Any], ...]
    arrays: dict[str, np.ndarray]

    @property
    def dense_bytes(self) -> int:
        """Bytes of the restored dense tensor."""
        return self.numel * ELEMENT_BYTES[self.dtype]


def parse_metadata(path: str, metadata: Mapping[str, str]) -> tuple[dict[str, Any], dict]:
    """The architecture record and the raw tensor table, as JSON objects.

    Raises:
        CondensaError: missing keys, text that is not JSON, or JSON of the wrong shape.

    """
    return (
        json_object(path, "architecture", metadata.get("architecture")),
        json_object(path, "tensors", metadata.get("tensors")),
    )


def _parametrizations(
    path: str, fqn: str, specs: Any, shape: tuple[int, ...]
) -> tuple[dict[str, Any], ...]:
    """Each spec checked by its registered format: ``{"type": kind, **options}``."""
    if not isinstance(specs, list) or len(specs) > 8:
        raise _fail(path, fqn, f"has a bad parametrization list {str(specs)[:80]!r}")
    out = []
    for spec in specs:
        kind = spec.get("type") if isinstance(spec, dict) else None
        stored = format_named(kind) if isinstance(kind, str) else None
        try:
            if stored is None:
                raise ValueError("unknown type")
            out.append({"type": kind, **stored.check_spec(spec, shape)})
        except ValueError as exc:
            raise _fail(
                path,
                fqn,
                f"has an unknown or malformed parametrization {str(spec)[:80]!r}: {exc} "
                f"(valid: {valid_specs()})",
            ) from None
    return tuple(out)


def codec_of(specs: tuple[dict[str, Any], ...]) -> tuple[type[StoredFormat], dict] | None:
    """The format that encodes a tensor's values itself, and its spec; None: a plain dtype.

    The deciding format is found by :func:`condensa.formats.storing`, as on save.
    """
    classes = [format_named(spec["type"]) for spec in specs]
    found = storing(classes)
    if found is None:
        return None
    stored = classes[found]
    return (stored, specs[found]) if stored is not None and stored.codec else None


def _array(
    path: str, fqn: str, arrays: Mapping[str, np.ndarray], part: str, ndim: int = 1
) -> np.ndarray:
    """The file's array for ``part`` of tensor ``fqn`` (1-D unless ``ndim`` is 0: any)."""
    key = f"{fqn}::{part}"
    if key not in arrays:
        raise _fail(path, fqn, f"has no {part!r} array in the file")
    array = arrays[key]
    if ndim and array.ndim != ndim:
        raise _fail(path, fqn, f"has a {part!r} array of shape {array.shape}, expected 1-D")
    return array


def _check_positions(
    path: str, fqn: str, info: Mapping[str, Any], numel: int, kept: int, arrays: Mapping
) -> tuple[str, int, dict[str, np.ndarray]]:
    kind: Any = info.get("positions")
    if kind == "dense":
        if kept != numel:
            raise _fail(path, fqn, f"claims dense positions but keeps {kept} of {numel}")
        return kind, 0, {}
    if kind == "bitmask":
        bits = _array(path, fqn, arrays, "bits")
        if bits.dtype != np.uint8 or bits.size != math.ceil(numel / 8):
            raise _fail(
                path, fqn, f"bitmask holds {bits.size} bytes, {math.ceil(numel / 8)} expected"
            )
        return kind, 0, {"bits": bits}
    if kind == "rice":
        k: Any = info.get("k")
        if not _int(k) or not 0 <= k <= MAX_RICE_K:
            raise _fail(path, fqn, f"has Rice parameter {k!r}; valid: 0..{MAX_RICE_K}")
        unary, rest = _array(path, fqn, arrays, "unary"), _array(path, fqn, arrays, "rest")
        if unary.dtype != np.uint8 or rest.dtype != np.uint8:
            raise _fail(path, fqn, "has Rice streams that are not bytes")
        if rest.size * 8 < kept * k:
            raise _fail(
                path, fqn, f"claims {kept} kept entries but its remainders hold {rest.size} bytes"
            )
        if unary.size * 8 < kept:
            raise _fail(
                path, fqn, f"claims {kept} kept entries but its gap codes hold {unary.size} bytes"
            )
        return kind, k, {"unary": unary, "rest": rest}
    raise _fail(path, fqn, f"has unknown position encoding {kind!r}; valid: dense, bitmask, rice")


def _entry(path: str, fqn: str, info: Any, arrays: Mapping[str, np.ndarray]) -> Entry:
    if not isinstance(info, dict):
        raise _fail(path, fqn, "has a record that is not a JSON object")
    shape: Any = info.get("shape")
    numel: Any = info.get("numel")
    kept: Any = info.get("kept")
    if not isinstance(shape, list) or len(shape) > 8 or not all(_int(d) and d >= 0 for d in shape):
        raise _fail(path, fqn, f"has shape {shape!r}; expected up to 8 non-negative integers")
    if not _int(numel) or numel != math.prod(shape):
        raise _fail(path, fqn, f"claims {numel!r} elements for shape {shape}")
    if not _int(kept) or not 0 <= kept <= numel:
        raise _fail(path, fqn, f"claims {kept!r} kept entries of {numel}")
    dtype: Any = info.get("dtype")
    storage: Any = info.get("storage")
    if dtype not in TENSOR_DTYPES:
        raise _fail(path, fqn, f"has dtype {dtype!r}; valid: {', '.join(TENSOR_DTYPES)}")
    positions, k, parts = _check_positions(path, fqn, info, numel, kept, arrays)
    specs = _parametrizations(path, fqn, info.get("parametrizations", []), tuple(shape))
    codec = codec_of(specs)
    if codec is not None:
        stored, spec = codec
        if storage != stored.kind:
            raise _fail(path, fqn, f"has storage {storage!r} under {stored.kind!r} parametrization")
        try:
            parts.update(
                stored.check_values(
                    spec, tuple(shape), kept, lambda part: _array(path, fqn, arrays, part, 0)
                )
            )
        except ValueError as exc:
            raise _fail(path, fqn, str(exc)) from None
    else:
        parts["values"] = _plain_values(path, fqn, storage, kept, arrays)
    return Entry(fqn, tuple(shape), numel, dtype, storage, positions, kept, k, specs, parts)


def _plain_values(
    path: str, fqn: str, storage: Any, kept: int, arrays: Mapping[str, np.ndarray]
) -> np.ndarray:
    if storage not in STORAGE_ARRAY_DTYPES:
        raise _fail(path, fqn, f"has storage {storage!r}; valid: {', '.join(STORAGE_ARRAY_DTYPES)}")
    values = _array(path, fqn, arrays, "values")
    if values.dtype != STORAGE_ARRAY_DTYPES[storage] or values.size != kept:
        raise _fail(
            path,
            fqn,
            f"stores {values.size} {values.dtype} values; {kept} {STORAGE_ARRAY_DTYPES[storage]} "
            "expected",
        )
    return values


def parse_entries(
    path: str, table: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> dict[str, Entry]:
    """Every tensor record of a file, checked against the file's arrays.

    Raises:
        CondensaError: a record whose claims contradict each other or the arrays.

    """
    return {str(fqn): _entry(path, str(fqn), info, arrays) for fqn, info in table.items()}


def check_shapes(
    path: str, entries: Mapping[str, Entry], shapes: Mapping[str, tuple], model: str
) -> None:
    """Refuse a file whose tensors do not have the names and shapes of ``model``'s.

    Raises:
        ConfigError: names missing or unexpected, or a shape that differs (the first
            differences are named).

    """
    missing = sorted(set(shapes) - set(entries))
    unexpected = sorted(set(entries) - set(shapes))
    wrong = [
        f"{fqn}: file {list(e.shape)} vs model {list(shapes[fqn])}"
        for fqn, e in entries.items()
        if fqn in shapes and tuple(e.shape) != tuple(shapes[fqn])
    ]
    if missing or unexpected or wrong:
        raise ConfigError(
            f"{path!r} does not match {model}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatches {wrong[:5]} (a thinned model's file needs "
            "the thinned architecture)"
        )


MIN_BUILD_LIMIT = 1 << 30
"""Bytes a model rebuilt by :func:`condensa.load` may always take (1 GiB) ..."""
BUILD_EXPANSION = 1024
"""... or this many times the file's size, whichever is larger (see ``max_bytes``)."""


def build_limit(file_bytes: int) -> int:
    """Bytes a model loaded from a file of ``file_bytes`` bytes may take by default."""
    return max(MIN_BUILD_LIMIT, BUILD_EXPANSION * file_bytes)


def too_large(path: str, claimed: int, on_disk: int, limit: int) -> CondensaError:
    """The error for a file whose sizes claim more than ``limit`` bytes."""
    return CondensaError(
        f"{path!r} describes a model of {claimed:,} bytes from {on_disk:,} bytes on disk "
        f"(limit {limit:,}); pass max_bytes= (or, with model=, a model of that size) to load "
        "it anyway"
    )


def parse_tied(
    path: str, metadata: Mapping[str, str], entries: Mapping[str, Entry]
) -> dict[str, str]:
    """The file's ``{tied fqn: stored fqn}`` record (weights stored once), each source stored.

    Raises:
        CondensaError: not a JSON object, or a source that is not a stored tensor.

    """
    if "tied" not in metadata:
        return {}
    table = json_object(path, "tied", metadata["tied"])
    for fqn, source in table.items():
        if not isinstance(source, str) or source not in entries or fqn in entries:
            raise CondensaError(f"{path!r} is malformed: tied tensor {fqn!r} -> {source!r}")
    return table


def encode_positions(mask: np.ndarray) -> tuple[str, dict[str, np.ndarray], dict[str, int]]:
    """The smallest of dense / bitmask / rice for a flat bool mask: ``(kind, arrays, fields)``."""
    n, kept = mask.size, int(mask.sum())
    if kept == n:
        return "dense", {}, {}
    k = best_rice_parameter(mask)
    unary, rest = rice_encode(mask, k)
    bitmask = bitmask_encode(mask)
    if unary.nbytes + rest.nbytes < bitmask.nbytes:
        return "rice", {"unary": unary, "rest": rest}, {"k": k}
    return "bitmask", {"bits": bitmask}, {}


def decode_positions(path: str, entry: Entry) -> np.ndarray:
    """The flat bool keep-mask of a checked entry.

    Raises:
        CondensaError: the codes do not decode to ``entry.kept`` positions.

    """
    parts = entry.arrays
    try:
        if entry.positions == "dense":
            return np.ones(entry.numel, dtype=bool)
        if entry.positions == "bitmask":
            mask = bitmask_decode(parts["bits"], entry.numel)
        else:
            mask = rice_decode(parts["unary"], parts["rest"], entry.k, entry.numel, entry.kept)
    except ValueError as exc:
        raise CondensaError(f"{path!r} is malformed: tensor {entry.fqn!r}: {exc}") from None
    if int(mask.sum()) != entry.kept:
        raise CondensaError(
            f"{path!r} is malformed: tensor {entry.fqn!r} keeps {int(mask.sum())} positions, "
            f"claims {entry.kept}"
        )
    return mask
