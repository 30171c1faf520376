"""The operator protocol: compress (π) and decompress (Δ) one tensor; project = Δ∘π.

An operator is a frozen dataclass holding its configuration. Pruning operators
(:class:`PruneOperator`) additionally expose *units* — the structures they remove
(single weights, blocks, channels) — with one importance score each, so a scheme
can rank the units of many layers together (global allocation) before configuring
each layer's operator with its own sparsity.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from condensa.functional import check_finite, check_sparsity, n_keep, topk_mask


@dataclass(frozen=True)
class Compressed:
    """The result of π on one tensor. Subclasses say how it is stored."""


@dataclass(frozen=True)
class PrunedTensor(Compressed):
    """A pruned tensor: dense values with zeros where ``mask`` is False.

    Attributes:
        values: the tensor, zero at pruned entries.
        mask: `bool`, same shape as ``values``; True = keep.
        bias_mask: `(out,)` bool mask for the layer's bias when whole output channels
            are pruned (the bias entry of a removed channel goes too), else None.

    """

    values: torch.Tensor
    mask: torch.Tensor
    bias_mask: torch.Tensor | None = None


@dataclass(frozen=True)
class CastTensor(Compressed):
    """A tensor stored in a narrower floating-point dtype.

    Attributes:
        values: the tensor in the storage dtype (float16 or bfloat16).
        dtype: the dtype to decompress to.

    """

    values: torch.Tensor
    dtype: torch.dtype


@dataclass(frozen=True)
class AffineTensor(Compressed):
    """A tensor stored as symmetric int8 with one float32 scale per channel of ``axis``.

    Attributes:
        q: `int8` values in ``[-127, 127]``.
        scale: float32, broadcastable to ``q``.
        axis: the channel axis of the scales.
        dtype: the dtype to decompress to.

    """

    q: torch.Tensor
    scale: torch.Tensor
    axis: int
    dtype: torch.dtype


@dataclass(frozen=True)
class GroupAffineTensor(Compressed):
    """A tensor stored as integers with one float32 scale and zero point per group of a row.

    ``value = (q - zero) * scale`` (see :mod:`condensa.functional.groups`).

    Attributes:
        q: `int16` levels in ``qrange``, shape `(out, cols)`.
        scale: `(out, groups)` float32 scales.
        zero: `(out, groups)` float32 integer-valued zero points (0 when symmetric).
        group_size: columns per group.
        bits: bits per level (4 or 8).
        symmetric: levels symmetric around 0 (zero points all 0).
        shape: the original tensor's shape.
        dtype: the dtype to decompress to.

    """

    q: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor
    group_size: int
    bits: int
    symmetric: bool
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass(frozen=True)
class ChainedTensor(Compressed):
    """The parts produced by a chain of operators, in the order they were applied."""

    parts: tuple[Compressed, ...]


class Operator(ABC):
    """Compresses one tensor. Subclasses are frozen dataclasses.

    Invariant: ``project`` is idempotent, ``project(project(w)) == project(w)``.
    """

    name: ClassVar[str] = ""
    """Registry name used in scheme specs (``{"type": name, ...}``)."""

    def check(self, weight: torch.Tensor, *, name: str = "weight") -> None:
        """Raise before any mutation if ``weight`` cannot be compressed by this operator.

        Args:
            weight: the tensor to compress.
            name: its fully qualified name, for error messages.

        """
        check_finite(weight, name=name)

    @abstractmethod
    def compress(self, weight: torch.Tensor) -> Compressed:
        """π: the compressed form of ``weight`` (never modifies ``weight``)."""

    @abstractmethod
    def decompress(self, compressed: Compressed) -> torch.Tensor:
        """Δ: back to a dense tensor usable for training and inference."""

    def project(self, weight: torch.Tensor) -> torch.Tensor:
        """The nearest compressed tensor, ``Δ(π(weight))``, in ``weight``'s dtype."""
        return self.decompress(self.compress(weight))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data description, inverse of :func:`condensa.operators.from_dict`."""
        out: dict[str, Any] = {"type": self.name}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out


class PruneOperator(Operator):
    """An operator that removes whole *units* (weights, blocks, channels) by score.

    Subclasses define the units through :meth:`unit_scores` and :meth:`expand`, and
    hold a ``sparsity`` field: the fraction of units to remove.
    """

    sparsity: float
    prunes_bias: ClassVar[bool] = False
    """Whether a unit owns the bias entry of its output channel (channel pruning)."""
    normalize_globally: ClassVar[bool] = False
    """Whether global ranking divides each layer's scores by their mean first.

    Channel norms grow with fan-in, so raw norms ranked across layers would empty
    narrow layers first; normalized scores rank channels against their layer's
    typical channel (as Torch-Pruning's global pruning does)."""

    @abstractmethod
    def unit_scores(self, weight: torch.Tensor) -> torch.Tensor:
        """`(n_units,)` float32 importance of each unit; larger is kept first."""

    @abstractmethod
    def expand(self, weight: torch.Tensor, keep_units: torch.Tensor) -> torch.Tensor:
        """Turn a `(n_units,)` bool unit mask into a mask of ``weight.shape``."""

    def unit_numel(self, weight: torch.Tensor) -> int:
        """Number of weights in one unit."""
        return weight.numel() // max(1, self.unit_scores(weight).numel())

    def n_kept_units(self, n_units: int, *, name: str = "weight") -> int:
        """How many of ``n_units`` this operator keeps (subclasses may round, e.g. align)."""
        return n_keep(n_units, self.sparsity)

    def with_sparsity(self, sparsity: float) -> PruneOperator:
        """A copy configured with another sparsity."""
        return dataclasses.replace(self, sparsity=check_sparsity(sparsity))  # type: ignore[type-var]

    def keep_units(self, weight: torch.Tensor) -> torch.Tensor:
        """`(n_units,)` bool: the units this operator keeps in ``weight``."""
        scores = self.unit_scores(weight)
        return topk_mask(scores, self.n_kept_units(scores.numel()))

    def compress(self, weight: torch.Tensor) -> PrunedTensor:
        """π: zero the lowest-scoring units (and their bias entries for channel units)."""
        keep = self.keep_units(weight)
        mask = self.expand(weight, keep)
        bias_mask = keep if self.prunes_bias else None
        return PrunedTensor(values=weight * mask, mask=mask, bias_mask=bias_mask)

    def decompress(self, compressed: Compressed) -> torch.Tensor:
        """Δ: the dense values (already zero at pruned entries)."""
        if not isinstance(compressed, PrunedTensor):
            raise TypeError(f"{type(self).__name__} cannot decompress {type(compressed).__name__}")
        return compressed.values
