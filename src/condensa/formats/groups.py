"""Group-wise int8/int4 with stored scales: what GPTQ and round-to-nearest group quantization hold.

Unlike :class:`~condensa.formats.FakeQuantInt8`, whose scales follow the weight, this
format keeps the scales and zero points it was given as buffers: a method that chose
the integer levels itself (GPTQ's error compensation) is held and saved exactly. A
file stores the kept levels (one byte each for int8, two per byte for int4), every
group's float32 scale and its zero point (int16).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from condensa.formats.base import Storage, StoredFormat, register_format
from condensa.functional.encoding import nibbles_decode, nibbles_encode
from condensa.functional.groups import (
    GROUP_BITS,
    dequantize_groups,
    fake_quantize_groups,
    n_groups,
    qrange,
    quantize_groups,
)
from condensa.operators import Compressed, GroupAffineTensor


def _cols(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else 1


@register_format
class FakeQuantGroup(StoredFormat):
    """Fake quantization with fixed per-group scales and zero points (rows on dim 0).

    Args:
        scale: `(out, groups)` float32 scales.
        zero: `(out, groups)` integer-valued zero points.
        group_size: columns per group.
        bits: 4 or 8.
        symmetric: levels symmetric around zero (zero points 0).

    """

    kind = "group"
    key = "group_scale"
    summary = "group with group_size, bits (4 or 8) and symmetric"
    holds = GroupAffineTensor
    codec = True
    group_scale: torch.Tensor
    group_zero: torch.Tensor
    group_config: torch.Tensor

    def __init__(
        self, scale: torch.Tensor, zero: torch.Tensor, group_size: int, bits: int, symmetric: bool
    ) -> None:
        super().__init__()
        self.register_buffer("group_scale", scale.detach().float().clone())
        self.register_buffer("group_zero", zero.detach().float().clone())
        config = torch.tensor([group_size, bits, int(symmetric)], dtype=torch.int64)
        self.register_buffer("group_config", config)

    @property
    def group_size(self) -> int:
        """Columns per group (0 until a state dict is loaded, see :meth:`from_buffer`)."""
        return int(self.group_config[0])

    @property
    def bits(self) -> int:
        """Bits per level."""
        return int(self.group_config[1])

    @property
    def symmetric(self) -> bool:
        """Whether the levels are symmetric around zero."""
        return bool(self.group_config[2])

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The nearest level of each weight under the fixed scales (identity gradient)."""
        if self.group_size == 0:  # built by from_buffer; its state dict is loaded next
            return weight
        return fake_quantize_groups(
            weight,
            self.group_scale,
            self.group_zero,
            self.group_size,
            qrange(self.bits, self.symmetric),
        )

    @classmethod
    def from_compressed(cls, compressed: Compressed) -> FakeQuantGroup:
        """Holding the compressed tensor's own scales and zero points."""
        assert isinstance(compressed, GroupAffineTensor)
        return cls(
            compressed.scale,
            compressed.zero,
            compressed.group_size,
            compressed.bits,
            compressed.symmetric,
        )

    @classmethod
    def from_buffer(cls, value: torch.Tensor) -> FakeQuantGroup:
        """From the scales of a state dict.

        Its zero points and configuration are loaded with the rest of the state dict
        (:func:`condensa.masking.restore`); until then it passes weights through.
        """
        return cls(value, torch.zeros_like(value), 0, 8, True)

    def spec(self) -> dict[str, Any]:
        """``{"group_size": ..., "bits": ..., "symmetric": ...}``."""
        return {"group_size": self.group_size, "bits": self.bits, "symmetric": self.symmetric}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
        """``group_size`` in ``1..cols``, ``bits`` 4 or 8, ``symmetric`` a bool."""
        size, bits, symmetric = spec.get("group_size"), spec.get("bits"), spec.get("symmetric")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= _cols(shape):
            raise ValueError(f"group_size {size!r} is not in 1..{_cols(shape)}")
        if bits not in GROUP_BITS.values():
            raise ValueError(f"bits {bits!r}; valid: {sorted(GROUP_BITS.values())}")
        if not isinstance(symmetric, bool):
            raise ValueError(f"symmetric {symmetric!r} is not true or false")
        return {"group_size": size, "bits": bits, "symmetric": symmetric}

    @classmethod
    def from_parts(
        cls, spec: Mapping[str, Any], mask: torch.Tensor, parts: Mapping[str, np.ndarray]
    ) -> FakeQuantGroup:
        """From a checked spec and the file's scales and zero points."""
        shape = tuple(mask.shape)
        groups = n_groups(_cols(shape), spec["group_size"])
        scale = torch.from_numpy(parts["scale"].copy()).reshape(shape[0], groups)
        zero = torch.from_numpy(parts["zero"].astype(np.float32)).reshape(shape[0], groups)
        return cls(scale, zero, spec["group_size"], spec["bits"], spec["symmetric"])

    def storage(self, tensor: torch.Tensor) -> Storage:
        """Half a byte (int4) or one byte (int8) per value, plus every group's scale."""
        name = "int4" if self.bits == 4 else "int8"
        return Storage(name, self.bits / 8, int(self.group_scale.numel()))

    def encode(
        self, tensor: torch.Tensor, keep: torch.Tensor
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The kept levels (offset to start at 0; packed for int4), scales and zero points."""
        qmin, qmax = qrange(self.bits, self.symmetric)
        rows = tensor.reshape(tensor.shape[0], -1)
        q = quantize_groups(rows, self.group_scale, self.group_zero, self.group_size, (qmin, qmax))
        offset = (q.reshape(-1)[keep] - qmin).to(torch.uint8).numpy()  # 0 .. 2^b - 1
        parts: dict[str, np.ndarray] = {
            "scale": self.group_scale.reshape(-1).numpy().astype(np.float32),
            "zero": self.group_zero.reshape(-1).numpy().astype(np.int16),
        }
        if self.bits == 8:
            return {**parts, "values": offset}, {}
        return {**parts, "nibbles": nibbles_encode(offset)}, {}

    @classmethod
    def check_values(
        cls,
        spec: Mapping[str, Any],
        shape: tuple[int, ...],
        kept: int,
        array: Callable[[str], np.ndarray],
    ) -> dict[str, np.ndarray]:
        """``kept`` levels; ``out * groups`` finite positive scales and in-range zero points."""
        scale, zero = array("scale"), array("zero")
        expected = (shape[0] if shape else 1) * n_groups(_cols(shape), spec["group_size"])
        if scale.dtype != np.float32 or scale.ndim != 1 or scale.size != expected:
            raise ValueError(f"has {scale.size} group scales, {expected} float32 expected")
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("has a group scale that is not a finite positive number")
        qmin, qmax = qrange(spec["bits"], spec["symmetric"])
        if zero.dtype != np.int16 or zero.ndim != 1 or zero.size != expected:
            raise ValueError(f"has {zero.size} zero points, {expected} int16 expected")
        if zero.size and (zero.min() < qmin or zero.max() > qmax):
            raise ValueError(f"has a zero point outside {qmin}..{qmax}")
        if spec["bits"] == 8:
            values = array("values")
            if values.dtype != np.uint8 or values.ndim != 1 or values.size != kept:
                raise ValueError(
                    f"stores {values.size} {values.dtype} values; {kept} uint8 expected"
                )
            if values.size and int(values.max()) > qmax - qmin:
                raise ValueError(f"stores a level above {qmax - qmin}")
            return {"values": values, "scale": scale, "zero": zero}
        nibbles = array("nibbles")
        if nibbles.dtype != np.uint8 or nibbles.ndim != 1 or nibbles.size != (kept + 1) // 2:
            raise ValueError(f"holds {nibbles.size} int4 bytes, {(kept + 1) // 2} expected")
        return {"nibbles": nibbles, "scale": scale, "zero": zero}

    @classmethod
    def decode(
        cls,
        spec: Mapping[str, Any],
        parts: Mapping[str, np.ndarray],
        shape: tuple[int, ...],
        keep: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """``(q - zero) * scale`` with zeros off ``keep``."""
        kept = int(keep.sum())
        qmin, _ = qrange(spec["bits"], spec["symmetric"])
        bytewise = spec["bits"] == 8
        offset = parts["values"] if bytewise else nibbles_decode(parts["nibbles"], kept)
        rows_count = shape[0] if shape else 1
        groups = n_groups(_cols(shape), spec["group_size"])
        scale = torch.from_numpy(parts["scale"].copy()).reshape(rows_count, groups)
        zero = torch.from_numpy(parts["zero"].astype(np.float32)).reshape(rows_count, groups)
        q = torch.zeros(keep.numel(), dtype=torch.int16)
        q[keep] = torch.from_numpy(offset.astype(np.int16)) + qmin
        rows = q.reshape(rows_count, -1)
        # pruned entries (off ``keep``) are exactly zero, whatever their group's zero point
        dense = dequantize_groups(rows, scale, zero, spec["group_size"], dtype)
        return (dense.reshape(-1) * keep).reshape(shape)
