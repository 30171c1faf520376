"""Remove attention heads whose values are zero: rows of q/k/v, columns of the output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.schemes.attention import ATTENTION, HeadLayout
from condensa.schemes.groups import ChannelGroup


def dead_heads(layout: HeadLayout, model: nn.Module) -> list[int]:
    """Heads whose value rows (weight and bias) are all zero."""
    fqn, segment = layout.value
    value = model.get_submodule(fqn)
    assert isinstance(value, nn.Linear)  # checked by the layout
    segments = max(s for name, s in layout.projections if name == fqn)
    dead = []
    for head in range(layout.heads):
        rows = layout.rows(head, segments)[
            segment * layout.head_dim : (segment + 1) * layout.head_dim
        ]
        weight_zero = bool((value.weight.detach()[rows] == 0).all())
        bias = value.bias
        if weight_zero and (bias is None or bool((bias[rows] == 0).all())):
            dead.append(head)
    return dead


def thin_heads(model: nn.Module, groups: Sequence[ChannelGroup]) -> dict[str, int]:
    """Remove every dead head in place; return the number removed per attention module.

    The output projection is the layer reading the value rows in the dependency
    ``groups`` (its input columns of a removed head go too).

    Raises:
        ConfigError: every head of a module is pruned.

    """
    removed: dict[str, int] = {}
    for layout in ATTENTION.layouts(model):
        dead = dead_heads(layout, model)
        if not dead:
            continue
        if len(dead) == layout.heads:
            raise ConfigError(
                f"every head of {layout.module!r} is pruned: the attention would vanish; "
                "lower HeadPrune's sparsity or exclude that module"
            )
        readers = _readers(layout, groups, dead)
        for fqn, segments in layout.projections:
            rows = [r for h in dead for r in layout.rows(h, segments)]
            _replace(model, fqn, _rows_removed(model.get_submodule(fqn), rows))
        for fqn, columns in readers.items():
            _replace(model, fqn, _columns_removed(model.get_submodule(fqn), columns))
        attention = model.get_submodule(layout.module)
        heads = layout.heads - len(dead)
        for attr, kind in layout.counts:
            setattr(attention, attr, heads if kind == "heads" else heads * layout.head_dim)
        removed[layout.module] = len(dead)
    return removed


def _readers(
    layout: HeadLayout, groups: Sequence[ChannelGroup], dead: list[int]
) -> dict[str, list[int]]:
    """Input columns of the layers reading the dead heads' values."""
    fqn, segment = layout.value
    segments = max(s for name, s in layout.projections if name == fqn)
    value_rows = {
        r
        for h in dead
        for r in layout.rows(h, segments)[
            segment * layout.head_dim : (segment + 1) * layout.head_dim
        ]
    }
    out: dict[str, list[int]] = {}
    for group in groups:
        writer = next((m for m in group.members if m.module == fqn and m.role == "out"), None)
        if writer is None:
            continue
        channels = {c for i, c in writer.pairs if i in value_rows}
        for member in group.members:
            if member.role == "in" and member.module not in {p for p, _ in layout.projections}:
                columns = sorted({i for i, c in member.pairs if c in channels})
                if columns:
                    out.setdefault(member.module, []).extend(columns)
    if not out:
        raise ConfigError(
            f"cannot find the layer reading the values of {layout.module!r}; its heads cannot "
            "be removed (describe the module with register_attention)"
        )
    return out


def _replace(model: nn.Module, fqn: str, module: nn.Module) -> None:
    parent, _, attr = fqn.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def _rows_removed(linear: nn.Module, rows: list[int]) -> nn.Linear:
    if not isinstance(linear, nn.Linear):
        raise ConfigError(f"head projections must be nn.Linear, got {type(linear).__name__}")
    keep = torch.ones(linear.out_features, dtype=torch.bool)
    keep[rows] = False
    new = nn.Linear(linear.in_features, int(keep.sum()), bias=linear.bias is not None)
    new = new.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight[keep])
        if linear.bias is not None:
            new.bias.copy_(linear.bias[keep])
    return new


def _columns_removed(linear: nn.Module, columns: list[int]) -> nn.Linear:
    if not isinstance(linear, nn.Linear):
        raise ConfigError(f"the output projection must be nn.Linear, got {type(linear).__name__}")
    keep = torch.ones(linear.in_features, dtype=torch.bool)
    keep[columns] = False
    new = nn.Linear(int(keep.sum()), linear.out_features, bias=linear.bias is not None)
    new = new.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, keep])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new
