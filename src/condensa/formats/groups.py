"""Group-wise int8/int4 with stored scales: what GPTQ and round-to-nearest group quantization hold.

Unlike :class:`~condensa.formats.FakeQuantInt8`, whose scales follow the weight, this
format keeps the scales it was given as a buffer: a method that chose the integer levels
itself (GPTQ's error compensation) is held and saved exactly. A file stores the kept
levels (int8 bytes, or two int4 levels per byte) and every group's float32 scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from condensa.formats.base import Storage, StoredFormat, register_format
from condensa.functional.groups import (
    GROUP_LEVELS,
    dequantize_groups,
    fake_quantize_groups,
    n_groups,
    quantize_groups,
)
from condensa.operators import Compressed, GroupAffineTensor


def _cols(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else 1


@register_format
class FakeQuantGroup(StoredFormat):
    """Symmetric fake quantization with fixed per-group scales (rows on dim 0).

    Args:
        scale: `(out, groups)` float32 scales.
        group_size: columns per group.
        levels: largest level (7: int4, 127: int8).

    """

    kind = "group"
    key = "group_scale"
    summary = "group with group_size and levels (7 or 127)"
    holds = GroupAffineTensor
    codec = True
    group_scale: torch.Tensor
    group_size: torch.Tensor
    group_levels: torch.Tensor

    def __init__(self, scale: torch.Tensor, group_size: int, levels: int) -> None:
        super().__init__()
        self.register_buffer("group_scale", scale.detach().float().clone())
        self.register_buffer("group_size", torch.tensor(group_size, dtype=torch.int64))
        self.register_buffer("group_levels", torch.tensor(levels, dtype=torch.int64))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The nearest level of each weight under the fixed scales (identity gradient)."""
        if int(self.group_size) == 0:  # built by from_buffer; its state dict is loaded next
            return weight
        return fake_quantize_groups(
            weight, self.group_scale, int(self.group_size), int(self.group_levels)
        )

    @classmethod
    def from_compressed(cls, compressed: Compressed) -> FakeQuantGroup:
        """Holding the compressed tensor's own scales."""
        assert isinstance(compressed, GroupAffineTensor)
        return cls(compressed.scale, compressed.group_size, compressed.levels)

    @classmethod
    def from_buffer(cls, value: torch.Tensor) -> FakeQuantGroup:
        """From the scales of a state dict.

        Its group size and levels are loaded with the rest of the state dict
        (:func:`condensa.masking.restore`); until then it passes weights through.
        """
        return cls(value, 0, 127)

    def spec(self) -> dict[str, Any]:
        """``{"group_size": ..., "levels": ...}``."""
        return {"group_size": int(self.group_size), "levels": int(self.group_levels)}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
        """``group_size`` in ``1..cols`` and ``levels`` 7 or 127."""
        size, levels = spec.get("group_size"), spec.get("levels")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= _cols(shape):
            raise ValueError(f"group_size {size!r} is not in 1..{_cols(shape)}")
        if levels not in GROUP_LEVELS.values():
            raise ValueError(f"levels {levels!r}; valid: {sorted(GROUP_LEVELS.values())}")
        return {"group_size": size, "levels": levels}

    @classmethod
    def from_parts(
        cls, spec: Mapping[str, Any], mask: torch.Tensor, parts: Mapping[str, np.ndarray]
    ) -> FakeQuantGroup:
        """From a checked spec and the file's scales."""
        shape = tuple(mask.shape)
        groups = n_groups(_cols(shape), spec["group_size"])
        scale = torch.from_numpy(parts["scale"].copy()).reshape(shape[0], groups)
        return cls(scale, spec["group_size"], spec["levels"])

    def storage(self, tensor: torch.Tensor) -> Storage:
        """Half a byte (int4) or one byte (int8) per value, plus every group's scale."""
        value_bytes = 0.5 if int(self.group_levels) <= 7 else 1
        name = "int4" if value_bytes < 1 else "int8"
        return Storage(name, value_bytes, int(self.group_scale.numel()))

    def encode(
        self, tensor: torch.Tensor, keep: torch.Tensor
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The kept levels (packed for int4) and the scales."""
        levels = int(self.group_levels)
        rows = tensor.reshape(tensor.shape[0], -1)
        q = quantize_groups(rows, self.group_scale, int(self.group_size), levels).reshape(-1)
        scale = self.group_scale.reshape(-1).numpy().astype(np.float32)
        if levels > 7:
            return {"values": q[keep].numpy(), "scale": scale}, {}
        nibbles = (q[keep] + 7).to(torch.uint8).numpy()  # 0..14
        if nibbles.size % 2:
            nibbles = np.append(nibbles, np.uint8(0))
        packed = (nibbles[0::2] << 4) | nibbles[1::2]
        return {"nibbles": packed.astype(np.uint8), "scale": scale}, {}

    @classmethod
    def check_values(
        cls,
        spec: Mapping[str, Any],
        shape: tuple[int, ...],
        kept: int,
        array: Callable[[str], np.ndarray],
    ) -> dict[str, np.ndarray]:
        """``kept`` levels and ``out * groups`` finite, positive float32 scales."""
        scale = array("scale")
        expected = (shape[0] if shape else 1) * n_groups(_cols(shape), spec["group_size"])
        if scale.dtype != np.float32 or scale.ndim != 1 or scale.size != expected:
            raise ValueError(f"has {scale.size} group scales, {expected} float32 expected")
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("has a group scale that is not a finite positive number")
        if spec["levels"] > 7:
            values = array("values")
            if values.dtype != np.int8 or values.ndim != 1 or values.size != kept:
                raise ValueError(
                    f"stores {values.size} {values.dtype} values; {kept} int8 expected"
                )
            if values.size and int(np.abs(values.astype(np.int16)).max()) > spec["levels"]:
                raise ValueError(f"stores a level outside +-{spec['levels']}")
            return {"values": values, "scale": scale}
        nibbles = array("nibbles")
        if nibbles.dtype != np.uint8 or nibbles.ndim != 1 or nibbles.size != (kept + 1) // 2:
            raise ValueError(f"holds {nibbles.size} int4 bytes, {(kept + 1) // 2} expected")
        return {"nibbles": nibbles, "scale": scale}

    @classmethod
    def decode(
        cls,
        spec: Mapping[str, Any],
        parts: Mapping[str, np.ndarray],
        shape: tuple[int, ...],
        keep: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """``q * scale`` with zeros off ``keep``."""
        kept = int(keep.sum())
        q = torch.zeros(keep.numel(), dtype=torch.int8)
        if spec["levels"] > 7:
            q[keep] = torch.from_numpy(parts["values"].copy())
        else:
            packed = parts["nibbles"]
            nibbles = np.stack([packed >> 4, packed & 0x0F], axis=1).reshape(-1)[:kept]
            q[keep] = torch.from_numpy(nibbles.astype(np.int8) - 7)
        rows = q.reshape(shape[0] if shape else 1, -1)
        groups = n_groups(rows.shape[1], spec["group_size"])
        scale = torch.from_numpy(parts["scale"].copy()).reshape(rows.shape[0], groups)
        return dequantize_groups(rows, scale, spec["group_size"], dtype).reshape(shape)
