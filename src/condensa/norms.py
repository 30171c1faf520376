"""LayerNorms that normalize over their kept channels: how a residual stream is pruned.

Removing a channel that a LayerNorm normalizes over changes its mean and variance, so
zeroing the channel is not enough to reproduce the smaller model: the norm must also
leave it out of its statistics. Condensa's rule: **a LayerNorm whose scale carries a
keep-mask normalizes over the kept channels only** (and writes zeros into the others).
Thinning then removes those channels and gives back a plain ``nn.LayerNorm`` of the
smaller width, which computes exactly the same function. This is what lets channel
groups through ConvNeXt, ViT and BERT residual streams be pruned and thinned.

The masked behaviour is installed on the compressed copy the way
``torch.nn.utils.parametrize`` installs its own: the module gets a class of its own,
a subclass of its class whose ``forward`` runs the original one while a
:class:`~torch.overrides.TorchFunctionMode` answers its ``F.layer_norm`` call. So
``nn.LayerNorm`` and subclasses that permute around it (``LayerNorm2d``) both work,
and the state dict keeps its keys. Before the mask is baked in, the live mask of the
scale's parametrization is read (so masks updated in place are followed); a baked
model keeps a copy in a non-persistent buffer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.utils import parametrize
from torch.overrides import TorchFunctionMode

from condensa.formats import kept_by

KEPT = "kept_channels"
"""The non-persistent buffer holding a baked norm's keep-mask."""


def is_channel_norm(module: nn.Module) -> bool:
    """A LayerNorm over one dimension with a scale: its channels can follow a mask."""
    return (
        isinstance(module, nn.LayerNorm)
        and len(module.normalized_shape) == 1
        and isinstance(getattr(module, "weight", None), torch.Tensor)
    )


def follows_mask(module: nn.Module) -> bool:
    """Whether ``module`` already normalizes over its kept channels."""
    return bool(getattr(type(module), "_condensa_kept_statistics", False))


def follow_mask(module: nn.Module) -> None:
    """Make the LayerNorm ``module`` normalize over its kept channels (in place).

    Call it on a compressed copy, before or after its scale is parametrized; the
    scale's mask says which channels are kept (all, until one is registered).

    Args:
        module: a module for which :func:`is_channel_norm` holds.

    """
    if follows_mask(module):
        return
    keep = torch.ones(int(module.normalized_shape[0]), dtype=torch.bool)  # type: ignore[index]
    cls = type(module)
    if parametrize.is_parametrized(module):  # keep parametrize's class on top
        namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        module.__class__ = type(cls.__name__, (_kept_class(cls.__bases__[0]),), namespace)
    else:
        module.__class__ = _kept_class(cls)
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    module.register_buffer(KEPT, keep.clone().to(weight.device), persistent=False)


def freeze(module: nn.Module) -> None:
    """Copy the live mask of the scale into the buffer (before the mask is baked in)."""
    live = _live_mask(module)
    if live is not None:
        getattr(module, KEPT).copy_(live)


def release(module: nn.Module) -> None:
    """Give a norm whose masked channels were removed its plain class back.

    Raises:
        ValueError: the norm's scale is still parametrized (bake the mask in first).

    """
    if not follows_mask(module):
        return
    if parametrize.is_parametrized(module):
        raise ValueError("release() expects a norm whose mask is baked in")
    module.__class__ = _original(type(module).__mro__)
    del module._buffers[KEPT]


def kept(module: nn.Module) -> torch.Tensor:
    """The channels ``module`` normalizes over (its live scale mask, else its buffer)."""
    live = _live_mask(module)
    return getattr(module, KEPT) if live is None else live


def _original(chain: tuple[type, ...]) -> type:
    for index, cls in enumerate(chain):
        if getattr(cls, "_condensa_kept_class", False):
            return chain[index + 1]
    raise ValueError("not a norm that follows a mask")


def _live_mask(module: nn.Module) -> torch.Tensor | None:
    if not parametrize.is_parametrized(module, "weight"):
        return None
    return kept_by(module.parametrizations.weight)  # type: ignore[union-attr,arg-type]


def _kept_class(base: type) -> type:
    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        with KeptStatistics(kept(self), float(self.eps)):  # type: ignore[arg-type]
            return base.forward(self, *args, **kwargs)  # type: ignore[attr-defined]

    return type(
        f"Kept{base.__name__}",
        (base,),
        {"forward": forward, "_condensa_kept_statistics": True, "_condensa_kept_class": True,
         "__module__": base.__module__},
    )  # fmt: skip


def kept_layer_norm(
    x: torch.Tensor,
    keep: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """Layer norm of ``x`` over its last dimension, counting only the ``keep`` channels.

    The other channels are left out of the mean and variance and come out zero (when
    the scale and shift are masked, as a channel mask leaves them).

    Example:
        >>> x = torch.tensor([[1.0, 3.0, 100.0]])
        >>> keep = torch.tensor([True, True, False])
        >>> kept_layer_norm(x, keep, None, None, 0.0).tolist()
        [[-1.0, 1.0, 0.0]]

    """
    k = keep.to(x.dtype)
    count = k.sum()
    mean = (x * k).sum(-1, keepdim=True) / count
    centered = (x - mean) * k
    var = centered.pow(2).sum(-1, keepdim=True) / count
    y = centered * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias * k
    return y.contiguous()  # as F.layer_norm's: layers after it take the same paths


class KeptStatistics(TorchFunctionMode):
    """Answers ``F.layer_norm`` over ``len(keep)`` channels with :func:`kept_layer_norm`."""

    def __init__(self, keep: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.keep = keep
        self.eps = eps

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.layer_norm:
            x, shape, *rest = args
            names = ("weight", "bias", "eps")
            options = dict(zip(names, rest, strict=False)) | kwargs
            if tuple(shape) == (self.keep.numel(),):
                return kept_layer_norm(
                    x,
                    self.keep.to(x.device),
                    options.get("weight"),
                    options.get("bias"),
                    float(options.get("eps", self.eps)),
                )
        return func(*args, **kwargs)
