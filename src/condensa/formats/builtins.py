"""The built-in stored formats: keep-masks, float16/bfloat16 casts, symmetric int8.

- :class:`Mask` — a registered ``bool`` buffer (True = keep); zero gradient at pruned
  entries, so pruned weights stay exactly zero whatever the optimizer does. A file
  stores only the kept values, their positions encoded by :mod:`condensa.io`.
- :class:`FakeCast` — round to float16/bfloat16 and back (straight-through gradient);
  values stored in the narrow dtype.
- :class:`FakeQuantInt8` — symmetric per-channel int8 fake quantization
  (straight-through); values stored as int8 plus one float32 scale per channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch

from condensa.errors import ConfigError
from condensa.formats.base import (
    Storage,
    StoredFormat,
    channel_scale,
    channels,
    check_axis,
    check_scales,
    register_format,
)
from condensa.functional import DTYPES, fake_cast, fake_quantize_int8, quantize_int8
from condensa.operators import AffineTensor, CastTensor, Compressed, PrunedTensor

CAST_CODES: dict[int, str] = {16: "float16", 17: "bfloat16"}
"""Code stored in :class:`FakeCast`'s ``code`` buffer -> storage dtype name."""


@register_format
class Mask(StoredFormat):
    """``w * mask``; ``mask`` is a registered bool buffer, True = keep.

    Args:
        mask: `bool` tensor of the parametrized tensor's shape.

    """

    kind = "mask"
    key = "mask"
    summary = "mask"
    holds = PrunedTensor
    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """Zero the pruned entries (gradient is zero there too)."""
        return weight * self.mask

    @classmethod
    def from_compressed(cls, compressed: Compressed) -> Mask:
        """The mask of a pruned tensor (its bias mask is :mod:`condensa.masking`'s concern)."""
        assert isinstance(compressed, PrunedTensor)
        return cls(compressed.mask)

    @classmethod
    def from_buffer(cls, value: torch.Tensor) -> Mask:
        """From the ``mask`` buffer of a state dict."""
        return cls(value)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], mask: torch.Tensor) -> Mask:
        """The file's keep-mask is the mask."""
        return cls(mask)


def kept_by(parametrizations: Iterable[Any]) -> torch.Tensor | None:
    """The entries every :class:`Mask` among ``parametrizations`` keeps (None: no mask)."""
    found = [p.mask for p in parametrizations if isinstance(p, Mask)]
    if not found:
        return None
    combined = found[0].clone()
    for mask in found[1:]:
        combined &= mask
    return combined


@register_format
class FakeCast(StoredFormat):
    """Round to a narrower float dtype and back, with a straight-through gradient.

    Args:
        dtype: ``"float16"`` or ``"bfloat16"``.

    """

    kind = "cast"
    key = "code"
    summary = "cast to float16/bfloat16"
    holds = CastTensor
    code: torch.Tensor

    def __init__(self, dtype: str) -> None:
        super().__init__()
        codes = {v: k for k, v in CAST_CODES.items()}
        if dtype not in codes:
            raise ConfigError(f"FakeCast dtype must be one of {list(codes)}, got {dtype!r}")
        self.register_buffer("code", torch.tensor(codes[dtype], dtype=torch.int64))

    @property
    def dtype(self) -> str:
        """The storage dtype name."""
        return CAST_CODES[int(self.code)]

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The representable value nearest to ``weight``."""
        return fake_cast(weight, DTYPES[self.dtype])

    @classmethod
    def from_compressed(cls, compressed: Compressed) -> FakeCast:
        """Cast to the dtype the values are held in."""
        assert isinstance(compressed, CastTensor)
        names = {v: k for k, v in DTYPES.items()}
        return cls(names[compressed.values.dtype])

    @classmethod
    def from_buffer(cls, value: torch.Tensor) -> FakeCast:
        """From the ``code`` buffer of a state dict."""
        code = int(value)
        if code not in CAST_CODES:
            raise ConfigError(f"FakeCast code {code} is not one of {sorted(CAST_CODES)}")
        return cls(CAST_CODES[code])

    def spec(self) -> dict[str, Any]:
        """``{"dtype": ...}``."""
        return {"dtype": self.dtype}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
        """``dtype`` must be float16 or bfloat16."""
        if spec.get("dtype") not in CAST_CODES.values():
            raise ValueError("dtype must be float16 or bfloat16")
        return {"dtype": spec["dtype"]}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], mask: torch.Tensor) -> FakeCast:
        """From a checked spec."""
        return cls(spec["dtype"])

    def storage(self, tensor: torch.Tensor) -> Storage:
        """Values in the narrow dtype."""
        return Storage(self.dtype, DTYPES[self.dtype].itemsize)


@register_format
class FakeQuantInt8(StoredFormat):
    """Symmetric int8 fake quantization with one scale per channel of ``axis``."""

    kind = "int8"
    key = "axis"
    summary = "int8 with an axis of the tensor"
    holds = AffineTensor
    codec = True
    axis: torch.Tensor

    def __init__(self, axis: int = 0) -> None:
        super().__init__()
        self.register_buffer("axis", torch.tensor(axis, dtype=torch.int64))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """``dequantize(quantize(weight))`` with an identity gradient."""
        return fake_quantize_int8(weight, int(self.axis))

    @classmethod
    def from_compressed(cls, compressed: Compressed) -> FakeQuantInt8:
        """Quantized along the compressed tensor's scale axis."""
        assert isinstance(compressed, AffineTensor)
        return cls(compressed.axis)

    @classmethod
    def from_buffer(cls, value: torch.Tensor) -> FakeQuantInt8:
        """From the ``axis`` buffer of a state dict."""
        return cls(int(value))

    def spec(self) -> dict[str, Any]:
        """``{"axis": ...}``."""
        return {"axis": int(self.axis)}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
        """``axis`` must be a dimension of the tensor (0 for a scalar)."""
        return check_axis(spec, shape, "int8")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], mask: torch.Tensor) -> FakeQuantInt8:
        """From a checked spec."""
        return cls(int(spec["axis"]))

    def storage(self, tensor: torch.Tensor) -> Storage:
        """One byte per value and one float32 scale per channel of ``axis``."""
        return Storage("int8", 1, channels(tensor.shape, int(self.axis)))

    def encode(
        self, tensor: torch.Tensor, keep: torch.Tensor
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The kept int8 values and every channel's scale; ``axis`` in the record."""
        axis = int(self.axis)
        q, scale = quantize_int8(tensor, axis)
        return {"values": q.reshape(-1)[keep].numpy(), "scale": scale.numpy()}, {"axis": axis}

    @classmethod
    def check_values(
        cls,
        spec: Mapping[str, Any],
        shape: tuple[int, ...],
        kept: int,
        array: Callable[[str], np.ndarray],
    ) -> dict[str, np.ndarray]:
        """``kept`` int8 values and one float32 scale per channel."""
        values, scale = array("values"), array("scale")
        if values.dtype != np.int8 or values.ndim != 1 or values.size != kept:
            raise ValueError(f"stores {values.size} {values.dtype} values; {kept} int8 expected")
        return {"values": values, "scale": check_scales(scale, shape, spec["axis"], "int8")}

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
        scale = channel_scale(parts["scale"], shape, spec["axis"])
        full_q = torch.zeros(keep.numel(), dtype=torch.int8)
        full_q[keep] = torch.from_numpy(parts["values"].copy())
        return (full_q.reshape(shape).float() * scale).to(dtype)
