"""Value operators: cast to float16/bfloat16, and symmetric per-channel int8."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from condensa.errors import ConfigError
from condensa.functional import (
    DTYPES,
    check_dtype,
    dequantize_int8,
    quantize_int8,
)
from condensa.functional.groups import (
    GROUP_BITS,
    check_group,
    dequantize_groups,
    group_params,
    qrange,
    quantize_groups,
)
from condensa.operators.base import (
    AffineTensor,
    CastTensor,
    Compressed,
    GroupAffineTensor,
    Operator,
)


@dataclass(frozen=True)
class Cast(Operator):
    """Store a tensor in ``float16`` or ``bfloat16``; Δ casts back to the original dtype.

    Example:
        >>> w = torch.tensor([0.1])
        >>> torch.equal(Cast("float16").project(w), w.half().float())
        True

    """

    dtype: str = "float16"
    name: ClassVar[str] = "cast"

    def __post_init__(self) -> None:
        if check_dtype(self.dtype) == "int8":
            raise ConfigError("Cast stores floating-point dtypes only; use Affine for int8")
        object.__setattr__(self, "dtype", check_dtype(self.dtype))

    @property
    def torch_dtype(self) -> torch.dtype:
        """The storage dtype as a ``torch.dtype``."""
        return DTYPES[self.dtype]

    def compress(self, weight: torch.Tensor) -> CastTensor:
        """π: ``weight`` rounded to the storage dtype (round-to-nearest-even)."""
        return CastTensor(values=weight.detach().to(self.torch_dtype), dtype=weight.dtype)

    def decompress(self, compressed: Compressed) -> torch.Tensor:
        """Δ: back to the original dtype."""
        if not isinstance(compressed, CastTensor):
            raise TypeError(f"Cast cannot decompress {type(compressed).__name__}")
        return compressed.values.to(compressed.dtype)


@dataclass(frozen=True)
class Affine(Operator):
    """Symmetric int8 with one scale per channel of ``axis`` (round-to-nearest).

    ``Δ(π(w))`` is within half a quantization step (``scale / 2``) of ``w``.

    Example:
        >>> w = torch.tensor([[1.0, -0.5], [0.25, 0.0]])
        >>> bool(((Affine().project(w) - w).abs() <= 1.0 / 254 + 1e-7).all())
        True

    """

    axis: int = 0
    name: ClassVar[str] = "int8"

    def __post_init__(self) -> None:
        if isinstance(self.axis, bool) or not isinstance(self.axis, int) or self.axis < 0:
            raise ConfigError(f"axis must be a non-negative integer, got {self.axis!r}")

    def check(self, weight: torch.Tensor, *, name: str = "weight") -> None:
        """Raise unless ``weight`` has dimension ``axis``."""
        super().check(weight, name=name)
        if weight.dim() <= self.axis:
            raise ConfigError(
                f"axis={self.axis} is out of range for {name!r} of shape {tuple(weight.shape)}"
            )

    def compress(self, weight: torch.Tensor) -> AffineTensor:
        """π: int8 values and per-channel float32 scales."""
        q, scale = quantize_int8(weight, self.axis)
        return AffineTensor(q=q, scale=scale, axis=self.axis, dtype=weight.dtype)

    def decompress(self, compressed: Compressed) -> torch.Tensor:
        """Δ: ``q * scale`` in the original dtype."""
        if not isinstance(compressed, AffineTensor):
            raise TypeError(f"Affine cannot decompress {type(compressed).__name__}")
        return dequantize_int8(compressed.q, compressed.scale, compressed.dtype)


@dataclass(frozen=True)
class GroupAffine(Operator):
    """int8 or int4 with one scale (and zero point) per ``group_size`` inputs of each row.

    The weight is seen as rows `(out, prod(rest))`; ``group_size=None`` gives one scale
    per row. ``symmetric=False`` (the default, as in GPTQ and AWQ) uses all ``2^b``
    levels on each group's range; ``True`` keeps the levels symmetric around zero.
    Round-to-nearest; one-shot methods (GPTQ) choose the levels themselves and hand
    over a :class:`GroupAffineTensor` with the scales they used.

    Example:
        >>> w = torch.tensor([[1.0, -0.5, 0.25, 0.0]])
        >>> GroupAffine("int4", group_size=2, symmetric=True).project(w).tolist()
        [[1.0, -0.5, 0.25, 0.0]]

    """

    dtype: str = "int4"
    group_size: int | None = 128
    symmetric: bool = False
    name: ClassVar[str] = "group"

    def __post_init__(self) -> None:
        check_group(self.dtype, self.group_size)
        if not isinstance(self.symmetric, bool):
            raise ConfigError(f"symmetric must be True or False, got {self.symmetric!r}")

    @property
    def bits(self) -> int:
        """Bits per level (4 or 8)."""
        return GROUP_BITS[self.dtype]

    def check(self, weight: torch.Tensor, *, name: str = "weight") -> None:
        """Raise for a scalar or empty tensor (rows are needed)."""
        super().check(weight, name=name)
        if weight.dim() < 1 or weight.numel() == 0:
            raise ConfigError(
                f"group quantization needs rows; {name!r} has shape {tuple(weight.shape)}"
            )

    def size_for(self, weight: torch.Tensor) -> int:
        """The group size used for ``weight`` (its row length when ``group_size`` is None)."""
        cols = weight[0].numel() if weight.dim() > 1 else 1
        return cols if self.group_size is None else min(self.group_size, max(cols, 1))

    def compress(self, weight: torch.Tensor) -> GroupAffineTensor:
        """π: levels, per-group scales and zero points (round-to-nearest)."""
        rows = weight.detach().reshape(weight.shape[0], -1)
        size = self.size_for(weight)
        scale, zero = group_params(rows, size, self.bits, self.symmetric)
        q = quantize_groups(rows, scale, zero, size, qrange(self.bits, self.symmetric))
        return GroupAffineTensor(
            q, scale, zero, size, self.bits, self.symmetric, tuple(weight.shape), weight.dtype
        )

    def decompress(self, compressed: Compressed) -> torch.Tensor:
        """Δ: ``(q - zero) * scale`` in the original shape and dtype."""
        if not isinstance(compressed, GroupAffineTensor):
            raise TypeError(f"GroupAffine cannot decompress {type(compressed).__name__}")
        dense = dequantize_groups(
            compressed.q,
            compressed.scale,
            compressed.zero,
            compressed.group_size,
            compressed.dtype,
        )
        return dense.reshape(compressed.shape)
