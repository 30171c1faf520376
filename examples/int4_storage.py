"""A new stored format in one file: symmetric per-channel int4, two values per byte.

Importing this module registers

- the operator ``Int4`` (π rounds to 15 levels per channel, Δ multiplies back), usable
  in Python and, by its name ``"int4"``, as ``Quantize("int4")``, in ``Rules`` specs and in
  run configs;
- the parametrization ``FakeQuantInt4``, the stored format: it holds ``Int4``'s output in
  a model, trains with a straight-through gradient, and tells ``condensa.save`` to keep
  its kept values as packed 4-bit nibbles plus one float32 scale per channel
  (``condensa.load`` checks and decodes them; ``condensa.stats`` counts half a byte per
  value).

Nothing in Condensa is edited. Use it from Python::

    import int4_storage
    small = condensa.compress(model, condensa.schemes.Quantize("int4"))
    condensa.save(small, "model.condensa")  # ~8x smaller than float32

or from a run config, with ``imports = ["int4_storage"]`` and a scheme such as
``{ type = "Quantize", dtype = "int4" }`` (composed with a pruning scheme: docs/extending.md).
Files holding int4 tensors load wherever this module has been imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from condensa.formats import (
    Storage,
    StoredFormat,
    channel_scale,
    channels,
    check_axis,
    check_scales,
    register_format,
)
from condensa.functional import quantize_int8
from condensa.functional.encoding import nibbles_decode, nibbles_encode
from condensa.operators import Compressed, Operator, register_operator

LEVELS = 7  # symmetric range [-7, 7]


def quantize_int4(weight: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)``: int8 tensor in [-7, 7] and float32 scale broadcastable to ``weight``."""
    return quantize_int8(weight, axis, levels=LEVELS)


@dataclass(frozen=True)
class Int4Tensor(Compressed):
    """π's output: int4 levels (held in int8), per-channel scales, the original dtype."""

    q: torch.Tensor
    scale: torch.Tensor
    axis: int
    dtype: torch.dtype


@dataclass(frozen=True)
class Int4(Operator):
    """Symmetric int4 with one scale per channel of ``axis``."""

    axis: int = 0
    name: ClassVar[str] = "int4"

    def compress(self, weight: torch.Tensor) -> Int4Tensor:
        q, scale = quantize_int4(weight, self.axis)
        return Int4Tensor(q, scale, self.axis, weight.dtype)

    def decompress(self, compressed: Compressed) -> torch.Tensor:
        assert isinstance(compressed, Int4Tensor)
        return (compressed.q.float() * compressed.scale).to(compressed.dtype)


@register_format
class FakeQuantInt4(StoredFormat):
    """int4 fake quantization in the model; packed nibbles and scales in a file."""

    kind = "int4"  # its name in a file (and its storage name)
    key = "int4_axis"  # the buffer that identifies it in a state dict
    summary = "int4 with an axis of the tensor"
    holds = Int4Tensor  # the operator output it holds
    codec = True  # it stores the values itself
    int4_axis: torch.Tensor

    def __init__(self, axis: int = 0) -> None:
        super().__init__()
        self.register_buffer("int4_axis", torch.tensor(axis, dtype=torch.int64))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        q, scale = quantize_int4(weight, int(self.int4_axis))
        return weight + ((q.float() * scale).to(weight.dtype) - weight).detach()

    @classmethod
    def from_compressed(cls, compressed: Compressed) -> FakeQuantInt4:
        assert isinstance(compressed, Int4Tensor)
        return cls(compressed.axis)

    @classmethod
    def from_buffer(cls, value: torch.Tensor) -> FakeQuantInt4:
        return cls(int(value))

    def spec(self) -> dict[str, Any]:
        return {"axis": int(self.int4_axis)}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
        return check_axis(spec, shape, "int4")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], mask: torch.Tensor) -> FakeQuantInt4:
        return cls(spec["axis"])

    def storage(self, tensor: torch.Tensor) -> Storage:
        return Storage("int4", 0.5, channels(tensor.shape, int(self.int4_axis)))

    def encode(
        self, tensor: torch.Tensor, keep: torch.Tensor
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        q, scale = quantize_int4(tensor, int(self.int4_axis))
        nibbles = (q.reshape(-1)[keep] + LEVELS).to(torch.uint8).numpy()  # 0..14
        return {"nibbles": nibbles_encode(nibbles), "scale": scale.numpy()}, {}

    @classmethod
    def check_values(
        cls,
        spec: Mapping[str, Any],
        shape: tuple[int, ...],
        kept: int,
        array: Callable[[str], np.ndarray],
    ) -> dict[str, np.ndarray]:
        nibbles, scale = array("nibbles"), array("scale")
        if nibbles.dtype != np.uint8 or nibbles.ndim != 1 or nibbles.size != (kept + 1) // 2:
            raise ValueError(f"holds {nibbles.size} int4 bytes, {(kept + 1) // 2} expected")
        return {"nibbles": nibbles, "scale": check_scales(scale, shape, spec["axis"], "int4")}

    @classmethod
    def decode(
        cls,
        spec: Mapping[str, Any],
        parts: Mapping[str, np.ndarray],
        shape: tuple[int, ...],
        keep: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        kept = int(keep.sum())
        nibbles = nibbles_decode(parts["nibbles"], kept)
        q = torch.zeros(keep.numel(), dtype=torch.float32)
        q[keep] = torch.from_numpy(nibbles.astype(np.float32)) - LEVELS
        return (q.reshape(shape) * channel_scale(parts["scale"], shape, spec["axis"])).to(dtype)


register_operator("int4", Int4)
