"""Per-module slicers: build a smaller module keeping some output and input channels.

A registry maps module types to functions ``(module, keep_out, keep_in, bias_delta)
-> new module``; ``keep_*`` are `bool` masks (None = keep all) and ``bias_delta`` is
added to the new bias (constants of removed input channels folded in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from condensa.errors import UnsupportedModuleError

Slicer = Callable[
    [nn.Module, "torch.Tensor | None", "torch.Tensor | None", "torch.Tensor | None"], nn.Module
]


def _copy_(target: torch.Tensor, value: torch.Tensor) -> None:
    with torch.no_grad():
        target.copy_(value)


def _sliced(
    module: nn.Module,
    keep_out: torch.Tensor | None,
    keep_in: torch.Tensor | None,
    bias_delta: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(weight, bias)`` of ``module`` with rows/columns kept and ``bias_delta`` folded in."""
    weight = cast(torch.Tensor, module.weight).detach()
    bias = None if module.bias is None else cast(torch.Tensor, module.bias).detach()
    if bias_delta is not None:
        bias = bias_delta if bias is None else bias + bias_delta
    if keep_in is not None:
        weight = weight[:, keep_in]
    if keep_out is not None:
        weight = weight[keep_out]
        bias = None if bias is None else bias[keep_out]
    return weight, bias


def slice_linear(module: nn.Module, keep_out, keep_in, bias_delta) -> nn.Module:  # type: ignore[no-untyped-def]
    """Rows (``keep_out``) and columns (``keep_in``) of a Linear."""
    assert isinstance(module, nn.Linear)
    weight, bias = _sliced(module, keep_out, keep_in, bias_delta)
    new = nn.Linear(
        weight.shape[1],
        weight.shape[0],
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    _copy_(new.weight, weight)
    if bias is not None:
        _copy_(new.bias, bias)
    return new


def slice_conv(module: nn.Module, keep_out, keep_in, bias_delta) -> nn.Module:  # type: ignore[no-untyped-def]
    """Filters (``keep_out``) and input channels (``keep_in``) of a Conv1d/2d/3d.

    A depthwise convolution (groups = channels) is sliced per channel with ``keep_out``.
    """
    assert isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    depthwise = module.groups > 1
    if depthwise and module.groups != module.in_channels:
        raise UnsupportedModuleError(f"cannot slice grouped convolution {module}")
    weight, bias = _sliced(module, keep_out, None if depthwise else keep_in, bias_delta)
    out_channels = weight.shape[0]
    in_channels = out_channels if depthwise else weight.shape[1]
    factory: Any = type(module)  # the kernel/padding tuples have the module's own arity
    new = factory(
        in_channels,
        out_channels,
        module.kernel_size,
        stride=module.stride,
        padding=module.padding,
        dilation=module.dilation,
        groups=out_channels if depthwise else 1,
        bias=bias is not None,
        padding_mode=module.padding_mode,
        device=weight.device,
        dtype=weight.dtype,
    )
    _copy_(new.weight, weight)
    if bias is not None:
        _copy_(new.bias, bias)
    return new


def slice_batchnorm(module: nn.Module, keep, _keep_in=None, _delta=None) -> nn.Module:  # type: ignore[no-untyped-def]
    """Channels of a BatchNorm (affine parameters and running statistics)."""
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    if keep is None:
        return module
    new = type(module)(
        int(keep.sum()),
        eps=module.eps,
        momentum=module.momentum,
        affine=module.affine,
        track_running_stats=module.track_running_stats,
        device=keep.device,
    )
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            source, target = getattr(module, name), getattr(new, name)
            if isinstance(source, torch.Tensor) and isinstance(target, torch.Tensor):
                target.copy_(source[keep])
        if isinstance(new.num_batches_tracked, torch.Tensor) and isinstance(
            module.num_batches_tracked, torch.Tensor
        ):
            new.num_batches_tracked.copy_(module.num_batches_tracked)
    return new


def slice_lstm(module: nn.Module, _keep_out, keep_in, _delta) -> nn.Module:  # type: ignore[no-untyped-def]
    """Input features of an LSTM (columns of ``weight_ih_l0``, and its reverse)."""
    assert isinstance(module, nn.LSTM)
    if keep_in is None:
        return module
    new = nn.LSTM(
        int(keep_in.sum()),
        module.hidden_size,
        module.num_layers,
        bias=module.bias,
        batch_first=module.batch_first,
        dropout=module.dropout,
        bidirectional=module.bidirectional,
        proj_size=module.proj_size,
    )
    with torch.no_grad():
        for name, param in module.named_parameters():
            value = param.detach()
            if name.startswith("weight_ih_l0"):
                value = value[:, keep_in]
            getattr(new, name).copy_(value)
    return new.to(next(module.parameters()).device)


SLICERS: dict[type[nn.Module], Slicer] = {
    nn.Linear: slice_linear,
    nn.Conv1d: slice_conv,
    nn.Conv2d: slice_conv,
    nn.Conv3d: slice_conv,
    nn.BatchNorm1d: slice_batchnorm,
    nn.BatchNorm2d: slice_batchnorm,
    nn.BatchNorm3d: slice_batchnorm,
    nn.LSTM: slice_lstm,
}
"""Slicers by module type; register more to thin through other modules."""


def slicer_for(module: nn.Module) -> Slicer:
    """The slicer of ``module``'s type (exact type first, then base classes)."""
    for cls in type(module).__mro__:
        if cls in SLICERS:
            return SLICERS[cls]
    raise UnsupportedModuleError(f"no slicer for {type(module).__name__}; register one in SLICERS")
