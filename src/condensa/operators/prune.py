"""Pruning operators: unstructured magnitude, blocks, channels (filters / neurons), N:M."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from condensa.errors import ShapeError
from condensa.functional import (
    align_keep,
    block_scores,
    channel_scores,
    check_align,
    check_block,
    check_criteria,
    check_finite,
    check_nm,
    check_nm_shape,
    check_sparsity,
    expand_blocks,
    n_keep,
    nm_mask,
)
from condensa.operators.base import Compressed, Operator, PrunedTensor, PruneOperator


@dataclass(frozen=True)
class Magnitude(PruneOperator):
    """Unstructured magnitude pruning: each weight is a unit scored by ``|w|``.

    Example:
        >>> Magnitude(0.5).project(torch.tensor([1.0, -3.0, 0.5, 2.0])).tolist()
        [0.0, -3.0, 0.0, 2.0]

    """

    sparsity: float = 0.0
    name: ClassVar[str] = "magnitude"

    def __post_init__(self) -> None:
        check_sparsity(self.sparsity)

    def unit_scores(self, weight: torch.Tensor) -> torch.Tensor:
        """`(numel,)` absolute values."""
        return weight.detach().abs().reshape(-1).float()

    def expand(self, weight: torch.Tensor, keep_units: torch.Tensor) -> torch.Tensor:
        """Reshape the per-weight mask to ``weight.shape``."""
        return keep_units.reshape(weight.shape)


@dataclass(frozen=True)
class Block(PruneOperator):
    """Block pruning: tiles of shape ``block`` scored by ``criteria`` and removed whole.

    ``block`` gives one size per dimension of the weight, or two sizes for a conv
    weight (the kernel is then taken whole).

    Example:
        >>> op = Block(0.5, block=(2, 2))
        >>> int((op.project(torch.randn(4, 4)) == 0).sum())
        8

    """

    sparsity: float = 0.0
    block: tuple[int, ...] = (4, 4)
    criteria: str = "l2"
    name: ClassVar[str] = "block"

    def __post_init__(self) -> None:
        check_sparsity(self.sparsity)
        check_criteria(self.criteria)
        check_block(self.block, self.block)  # positive integers; tiles itself
        object.__setattr__(self, "block", tuple(self.block))

    def check(self, weight: torch.Tensor, *, name: str = "weight") -> None:
        """Raise :class:`ShapeError` unless ``block`` tiles ``weight``."""
        check_finite(weight, name=name)
        check_block(self.block, weight.shape, name=f"weight {name!r}")

    def unit_scores(self, weight: torch.Tensor) -> torch.Tensor:
        """`(n_blocks,)` scores, blocks in row-major order."""
        full = check_block(self.block, weight.shape)
        return block_scores(weight, full, self.criteria).reshape(-1)

    def expand(self, weight: torch.Tensor, keep_units: torch.Tensor) -> torch.Tensor:
        """Repeat each block's decision over its entries."""
        full = check_block(self.block, weight.shape)
        grid = tuple(s // b for s, b in zip(weight.shape, full, strict=True))
        return expand_blocks(keep_units.reshape(grid), full)


@dataclass(frozen=True)
class Channels(PruneOperator):
    """Channel pruning: output filters of a Conv or neurons (rows) of a Linear.

    The layer's bias entries of removed channels are removed too
    (:attr:`PrunedTensor.bias_mask`). With ``align``, the number of kept channels is
    rounded down to a multiple of ``align`` (never to zero).

    Example:
        >>> op = Channels(0.5)
        >>> op.project(torch.tensor([[1.0, 1.0], [0.1, 0.1]])).tolist()
        [[1.0, 1.0], [0.0, 0.0]]

    """

    sparsity: float = 0.0
    criteria: str = "l2"
    align: int | None = None
    name: ClassVar[str] = "channels"
    prunes_bias: ClassVar[bool] = True
    normalize_globally: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_sparsity(self.sparsity)
        check_criteria(self.criteria)
        check_align(self.align)

    def check(self, weight: torch.Tensor, *, name: str = "weight") -> None:
        """Raise if the weight has no channel dimension or fewer channels than ``align``."""
        check_finite(weight, name=name)
        if weight.dim() < 2:
            raise ShapeError(
                f"channel pruning needs a weight of at least 2 dimensions; "
                f"{name!r} has shape {tuple(weight.shape)}"
            )
        self.n_kept_units(weight.shape[0], name=name)

    def n_kept_units(self, n_units: int, *, name: str = "weight") -> int:
        """``n_keep`` rounded down to a multiple of ``align`` (never zero)."""
        return align_keep(n_keep(n_units, self.sparsity), self.align, n_units, what=repr(name))

    def unit_scores(self, weight: torch.Tensor) -> torch.Tensor:
        """`(out,)` scores of the output channels."""
        return channel_scores(weight, self.criteria)

    def expand(self, weight: torch.Tensor, keep_units: torch.Tensor) -> torch.Tensor:
        """Broadcast the `(out,)` channel mask over each channel's weights."""
        view = (-1,) + (1,) * (weight.dim() - 1)
        return keep_units.reshape(view).expand(weight.shape).clone()


@dataclass(frozen=True)
class NM(Operator):
    """N:M semi-structured pruning: keep ``n`` of every ``m`` consecutive input weights.

    The sparsity is fixed at ``1 - n / m``. Groups run along dim 1 (the input
    dimension), which ``m`` must divide.

    Example:
        >>> NM(2, 4).project(torch.tensor([[4.0, 1.0, 3.0, 2.0]])).tolist()
        [[4.0, 0.0, 3.0, 0.0]]

    """

    n: int = 2
    m: int = 4
    name: ClassVar[str] = "nm"

    def __post_init__(self) -> None:
        check_nm(self.n, self.m)

    @property
    def sparsity(self) -> float:
        """The fixed fraction of zeros, ``1 - n / m``."""
        return 1.0 - self.n / self.m

    def check(self, weight: torch.Tensor, *, name: str = "weight") -> None:
        """Raise :class:`ShapeError` unless ``m`` divides the input dimension."""
        check_finite(weight, name=name)
        check_nm_shape(tuple(weight.shape), self.m, name=f"weight {name!r}")

    def compress(self, weight: torch.Tensor) -> PrunedTensor:
        """π: keep the ``n`` largest magnitudes of each group of ``m``."""
        mask = nm_mask(weight, self.n, self.m)
        return PrunedTensor(values=weight * mask, mask=mask)

    def decompress(self, compressed: Compressed) -> torch.Tensor:
        """Δ: the dense values."""
        if not isinstance(compressed, PrunedTensor):
            raise TypeError(f"NM cannot decompress {type(compressed).__name__}")
        return compressed.values

    def to_dict(self) -> dict[str, object]:
        """``{"type": "nm", "n": n, "m": m}``."""
        return {"type": self.name, "n": self.n, "m": self.m}


@dataclass(frozen=True)
class ChannelMask(PruneOperator):
    """Given output channels removed: the decision of a group-aware scheme.

    Channels run along ``dim``: 0 for Linear/convolution rows and BatchNorm entries, 1
    for an Embedding's dimensions.

    Group-aware schemes rank whole dependency groups, then pin each member tensor's
    channels with this operator, so the weight rows of every member of a group (and
    their bias entries, BatchNorm scale and shift included) go together.

    Example:
        >>> ChannelMask(keep=(True, False)).project(torch.ones(2, 3)).tolist()
        [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]

    """

    keep: tuple[bool, ...] = ()
    sparsity: float = 0.0
    dim: int = 0
    name: ClassVar[str] = "channel_mask"
    prunes_bias: ClassVar[bool] = True

    def __post_init__(self) -> None:
        keep = tuple(bool(k) for k in self.keep)
        object.__setattr__(self, "keep", keep)
        if keep:
            object.__setattr__(self, "sparsity", 1.0 - sum(keep) / len(keep))

    def check(self, weight: torch.Tensor, *, name: str = "weight") -> None:
        """Raise :class:`ShapeError` unless ``weight`` has one row per entry of ``keep``."""
        check_finite(weight, name=name)
        if weight.dim() <= self.dim or weight.shape[self.dim] != len(self.keep):
            raise ShapeError(
                f"channel mask of {len(self.keep)} channels does not fit {name!r} of shape "
                f"{tuple(weight.shape)}"
            )

    def unit_scores(self, weight: torch.Tensor) -> torch.Tensor:
        """1 for kept channels, 0 for removed ones."""
        return torch.tensor(self.keep, dtype=torch.float32)

    def keep_units(self, weight: torch.Tensor) -> torch.Tensor:
        """The pinned channels."""
        return torch.tensor(self.keep, dtype=torch.bool, device=weight.device)

    def expand(self, weight: torch.Tensor, keep_units: torch.Tensor) -> torch.Tensor:
        """Broadcast the channel mask over each channel's entries (along :attr:`dim`)."""
        view = [1] * weight.dim()
        view[self.dim] = -1
        return keep_units.reshape(view).expand(weight.shape).clone()

    def compress(self, weight: torch.Tensor) -> PrunedTensor:
        """π: zero the removed channels (and their bias entries when ``dim`` is 0)."""
        keep = self.keep_units(weight)
        mask = self.expand(weight, keep)
        return PrunedTensor(
            values=weight * mask, mask=mask, bias_mask=keep if self.dim == 0 else None
        )

    def to_dict(self) -> dict[str, object]:
        """``{"type": "channel_mask", "keep": [...], "dim": d}``."""
        return {"type": self.name, "keep": list(self.keep), "dim": self.dim}
