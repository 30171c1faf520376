"""Stored formats: the parametrization that holds a compressed tensor, and how a file stores it.

Every Condensa parametrization is a :class:`StoredFormat`, an ``nn.Module`` whose
forward is ``Δ(π(w))`` and whose class says everything else about it, in one place:

- ``kind``: its name in a file's parametrization list (``{"type": kind, **spec()}``);
- ``key``: the registered buffer holding its configuration (it identifies the
  parametrization in a ``state_dict``, so :func:`condensa.masking.restore` rebuilds it);
- ``holds``: the operators' :class:`~condensa.operators.Compressed` type it holds, and
  :meth:`~StoredFormat.from_compressed` building it from one;
- :meth:`~StoredFormat.storage`: the storage it implies (bytes per value, scales), for
  :func:`condensa.stats`;
- a value codec: a format whose values are not stored as a plain dtype (``codec =
  True``, e.g. int8 values with per-channel scales) encodes, checks and decodes them.

Formats are registered with :func:`register_format`; :mod:`condensa.masking`,
:mod:`condensa.io` and :mod:`condensa.filecheck` loop over the registry and know no
format by name. See docs/extending.md for an int4 format added in one file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.operators import Compressed

T = TypeVar("T", bound=type["StoredFormat"])

PLAIN_ARRAY_DTYPES: dict[str, np.dtype] = {
    **{
        name: np.dtype(name)
        for name in ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8")
    },
    "bool": np.dtype(bool),
    "bfloat16": np.dtype(np.int16),  # raw 16 bits: numpy has no bfloat16
}
"""Dtypes whose values a file stores as they are, and the numpy dtype of their array."""


@dataclass(frozen=True)
class Storage:
    """How a tensor's values are stored compressed.

    Attributes:
        dtype: storage name of the values (``"float32"``, ``"float16"``, ``"int8"``...).
        value_bytes: bytes per stored value (a fraction for sub-byte formats).
        scale_count: number of float32 scales stored beside the values.

    """

    dtype: str
    value_bytes: float
    scale_count: int = 0


def channels(shape: Sequence[int], axis: int) -> int:
    """Number of per-channel scales along ``axis`` of ``shape`` (1 for a scalar)."""
    return shape[axis] if len(shape) > axis else 1


def check_axis(spec: Mapping[str, Any], shape: tuple[int, ...], kind: str) -> dict[str, Any]:
    """``{"axis": ...}`` of a per-channel format's spec, checked against ``shape``.

    Raises:
        ValueError: the axis is not an integer dimension of ``shape`` (0 for a scalar).

    """
    axis = spec.get("axis")
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis < max(1, len(shape)):
        raise ValueError(f"{kind} axis {axis!r} is not a dimension of shape {list(shape)}")
    return {"axis": axis}


def check_scales(array: np.ndarray, shape: tuple[int, ...], axis: int, kind: str) -> np.ndarray:
    """A file's per-channel scales: float32, one per channel of ``axis``.

    Raises:
        ValueError: another dtype or count, or a scale that is inf or NaN.

    """
    expected = channels(shape, axis)
    if array.dtype != np.float32 or array.size != expected:
        raise ValueError(f"has {array.size} {kind} scales, {expected} expected")
    if not np.isfinite(array).all():
        raise ValueError(f"has a {kind} scale that is not finite (inf or NaN)")
    return array


def channel_scale(array: np.ndarray, shape: tuple[int, ...], axis: int) -> torch.Tensor:
    """A file's per-channel scales, shaped to broadcast against a tensor of ``shape``."""
    scale_shape = [1] * len(shape)
    if scale_shape:
        scale_shape[axis] = shape[axis]
    return torch.from_numpy(array.copy()).reshape(scale_shape)


def encode_plain(values: torch.Tensor, dtype: str) -> np.ndarray:
    """``values`` as a 1-D array of storage dtype ``dtype`` (bfloat16 as its raw bits)."""
    if dtype == "bfloat16":
        return values.reshape(-1).to(torch.bfloat16).view(torch.int16).numpy()
    return values.reshape(-1).to(getattr(torch, dtype)).numpy()


def decode_plain(array: np.ndarray, dtype: str) -> torch.Tensor:
    """Inverse of :func:`encode_plain`."""
    values = torch.from_numpy(array.copy())
    return values.view(torch.bfloat16) if dtype == "bfloat16" else values


class StoredFormat(nn.Module):
    """Base class of Condensa parametrizations (see the module docstring).

    A subclass keeps its whole configuration in registered buffers (so a
    ``state_dict`` describes it), sets ``kind``, ``key`` and ``summary``, and
    overrides what applies to it below.
    """

    kind: ClassVar[str] = ""
    key: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """What a valid spec looks like, for error messages (e.g. "int8 with an axis")."""
    holds: ClassVar[type[Compressed] | None] = None
    codec: ClassVar[bool] = False
    """True when the values are stored by this format's own encode/decode."""

    @classmethod
    def from_compressed(cls, compressed: Compressed) -> StoredFormat:
        """The parametrization holding ``compressed`` (an instance of ``holds``)."""
        raise NotImplementedError(f"{cls.__name__} holds no operator's output")

    @classmethod
    def from_buffer(cls, value: torch.Tensor) -> StoredFormat:
        """Rebuild from the value of its ``key`` buffer in a state dict."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """Its options as JSON data, written in a file beside ``kind``."""
        return {}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
        """The options of ``spec`` read from an untrusted file, for a tensor of ``shape``.

        Raises:
            ValueError: a missing or invalid option.

        """
        return {}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], mask: torch.Tensor) -> StoredFormat:
        """Rebuild from a checked spec; ``mask`` is the tensor's decoded keep-mask."""
        raise NotImplementedError

    @classmethod
    def from_parts(
        cls, spec: Mapping[str, Any], mask: torch.Tensor, parts: Mapping[str, np.ndarray]
    ) -> StoredFormat:
        """Rebuild from a checked spec and the tensor's checked arrays.

        For formats that hold data of their own, such as fixed scales; the default
        calls :meth:`from_spec`.
        """
        return cls.from_spec(spec, mask)

    def storage(self, tensor: torch.Tensor) -> Storage | None:
        """The storage of ``tensor`` under this parametrization; None leaves it as it is.

        A format that overrides this changes how values are stored; of a tensor's
        parametrizations, the last such one decides (see :func:`storing`).
        """
        return None

    def encode(
        self, tensor: torch.Tensor, keep: torch.Tensor
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``codec`` formats: the arrays storing ``tensor``'s kept entries, and record fields.

        ``keep`` is the flat bool mask of the kept entries; the fields are extra JSON
        data for the tensor's record in the file.
        """
        raise NotImplementedError

    @classmethod
    def check_values(
        cls,
        spec: Mapping[str, Any],
        shape: tuple[int, ...],
        kept: int,
        array: Callable[[str], np.ndarray],
    ) -> dict[str, np.ndarray]:
        """``codec`` formats: the arrays a file must hold for ``kept`` entries, checked.

        ``array(part)`` returns the file's array for a part (or raises).

        Raises:
            ValueError: an array of the wrong dtype or size.

        """
        raise NotImplementedError

    @classmethod
    def decode(
        cls,
        spec: Mapping[str, Any],
        parts: Mapping[str, np.ndarray],
        shape: tuple[int, ...],
        keep: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """``codec`` formats: the dense tensor of ``shape`` and ``dtype`` (zeros off ``keep``)."""
        raise NotImplementedError


_FORMATS: dict[str, type[StoredFormat]] = {}


def register_format(cls: T) -> T:
    """Class decorator: make a :class:`StoredFormat` known to masking, io and file checks.

    Raises:
        ConfigError: not a StoredFormat subclass, no ``kind``/``key``, or a kind or key
            already taken.

    """
    if not (isinstance(cls, type) and issubclass(cls, StoredFormat)):
        raise ConfigError(f"{cls!r} is not a StoredFormat subclass")
    if not cls.kind or not cls.key:
        raise ConfigError(f"{cls.__name__} must set the class attributes 'kind' and 'key'")
    for other in _FORMATS.values():
        if other.kind == cls.kind or other.key == cls.key:
            raise ConfigError(
                f"{cls.__name__}: kind {cls.kind!r} / key {cls.key!r} clash with {other.__name__}"
                f" (kind {other.kind!r}, key {other.key!r})"
            )
    _FORMATS[cls.kind] = cls
    return cls


def storing(classes: Sequence[type | None]) -> int | None:
    """Position of the format that decides how a tensor's values are stored, or None.

    ``classes`` are a tensor's parametrizations (or their file specs' formats), in
    order; the last one that overrides :meth:`StoredFormat.storage` decides. ``save``
    and ``load`` apply this one rule, so a file reads back as it was written.
    """
    for i in reversed(range(len(classes))):
        cls = classes[i]
        if not (cls is not None and issubclass(cls, StoredFormat)):
            continue
        if cls.storage is not StoredFormat.storage:
            return i
    return None


def formats() -> tuple[type[StoredFormat], ...]:
    """Every registered format, in registration order."""
    return tuple(_FORMATS.values())


def format_named(kind: str) -> type[StoredFormat] | None:
    """The format registered as ``kind``, or None."""
    return _FORMATS.get(kind)


def format_keyed(key: str) -> type[StoredFormat] | None:
    """The format whose configuration buffer is named ``key``, or None."""
    return next((f for f in _FORMATS.values() if f.key == key), None)


def holding(compressed: Compressed) -> StoredFormat:
    """The parametrization of the registered format that holds ``compressed``.

    Raises:
        TypeError: no registered format holds its type.

    """
    for cls in _FORMATS.values():
        if cls.holds is not None and isinstance(compressed, cls.holds):
            return cls.from_compressed(compressed)
    raise TypeError(f"no registered stored format holds {type(compressed).__name__}")


def valid_specs() -> str:
    """The registered formats' spec summaries, for error messages."""
    return ", ".join(cls.summary or cls.kind for cls in _FORMATS.values())
