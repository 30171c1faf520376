"""A model's structural attributes (features, channels, heads), saved beside its tensors.

Thinning changes module attributes (``out_features``, ``in_channels``, ``num_features``,
``normalized_shape``, head counts). :func:`condensa.save` records them, so
:func:`condensa.load` can turn the uncompressed architecture (zoo, factory or
``model=``) into the thinned one before restoring the tensors: no hand-made
skeleton. Only these plain attributes are read from a file, and only on modules the
architecture already has: a file never names a class or runs code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from condensa.errors import CondensaError


def json_object(path: str, key: str, text: object) -> dict[str, Any]:
    """The JSON object stored under metadata ``key`` of the file at ``path``.

    Raises:
        CondensaError: no such record, text that is not JSON, or JSON that is not an object.

    """
    if not isinstance(text, str):
        raise CondensaError(f"{path!r} is malformed: no {key!r} record")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CondensaError(f"{path!r} is malformed: {key!r} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CondensaError(f"{path!r} is malformed: {key!r} must be a JSON object")
    return value


HEAD_COUNTS = ("num_attention_heads", "num_heads", "n_heads")
"""Attention-module attributes that count heads (BERT, ViT/timm, DistilBERT)."""
HEAD_WIDTHS = ("all_head_size", "inner_dim")
"""Attention-module attributes holding heads x head size."""
GROUP_COUNTS = ("num_key_value_groups",)
"""Attention-module attributes that follow grouped-query head counts (Llama family)."""

ATTRIBUTES = (
    "in_features",
    "out_features",
    "in_channels",
    "out_channels",
    "groups",
    "num_features",
    "normalized_shape",
    "num_embeddings",
    "embedding_dim",
    *HEAD_COUNTS,
    *HEAD_WIDTHS,
    *GROUP_COUNTS,
    "attention_head_size",
    "head_dim",
)
"""Attributes recorded per module when they hold an int or a tuple of ints: every
attribute thinning changes is here, so a saved thinned model loads with its counts."""


def _plain(value: Any) -> int | list[int] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and value and all(type(v) is int for v in value):
        return list(value)
    return None


def record(model: nn.Module) -> dict[str, dict[str, Any]]:
    """``{module fqn: {attribute: value}}`` for every structural attribute of ``model``."""
    out: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        found = {}
        for attr in ATTRIBUTES:
            value = _plain(getattr(module, attr, None))
            if value is not None:
                found[attr] = value
        if found:
            out[name] = found
    return out


def parse(path: str, text: str | None) -> dict[str, dict[str, Any]]:
    """The structure record of a file (empty for files saved before it existed).

    Raises:
        CondensaError: not JSON, or values that are not non-negative ints (or lists).

    """
    if text is None:
        return {}
    value = json_object(path, "structure", text)
    for module, attrs in value.items():
        ok = isinstance(attrs, dict) and all(
            key in ATTRIBUTES and _valid(v) for key, v in attrs.items()
        )
        if not ok:
            raise CondensaError(
                f"{path!r} is malformed: bad structure record for module {module!r}: "
                f"{str(attrs)[:80]}"
            )
    return value


def _valid(value: Any) -> bool:
    if type(value) is int:
        return 0 <= value < 1 << 40
    return (
        isinstance(value, list)
        and 0 < len(value) <= 8
        and all(type(v) is int and 0 <= v < 1 << 40 for v in value)
    )


def apply(
    path: str,
    model: nn.Module,
    structure: Mapping[str, Mapping[str, Any]],
    shapes: Mapping[str, tuple[int, ...]],
) -> None:
    """Turn ``model`` into the recorded structure.

    Give ``model`` the recorded attributes and, on the modules that changed, the file's
    tensor shapes (uninitialized tensors of the same dtype, filled by :func:`load`).

    Modules or attributes the model lacks are skipped: the tensor names and shapes are
    compared with the file's afterwards, and that comparison names the differences.
    """
    modules = dict(model.named_modules())
    thinned = False
    for name, attrs in structure.items():
        module = modules.get(name)
        if module is None:
            continue
        changed = False
        for attr, value in attrs.items():
            current = _plain(getattr(module, attr, None))
            if current is not None and current != value:
                setattr(module, attr, tuple(value) if isinstance(value, list) else value)
                changed = True
        if changed:
            _resize(module, name, shapes)
        thinned = thinned or changed
    if thinned:  # free parameters (class token, layer scale) lost the same channels
        for name, module in modules.items():
            if name not in structure:
                _resize(module, name, shapes, shrink_only=True)


def _resize(
    module: nn.Module, name: str, shapes: Mapping[str, tuple[int, ...]], shrink_only: bool = False
) -> None:
    for attr, tensor in list(module._parameters.items()) + list(module._buffers.items()):
        fqn = f"{name}.{attr}" if name else attr
        shape = shapes.get(fqn)
        if tensor is None or shape is None or tuple(tensor.shape) == tuple(shape):
            continue
        if shrink_only and (
            len(shape) != tensor.dim()
            or any(n > m for n, m in zip(shape, tensor.shape, strict=True))
        ):
            continue  # not what thinning does: left for the shape check to name
        fresh = torch.empty(shape, dtype=tensor.dtype, device=tensor.device)
        if attr in module._parameters:
            module._parameters[attr] = nn.Parameter(fresh, requires_grad=tensor.requires_grad)
        else:
            module._buffers[attr] = fresh
