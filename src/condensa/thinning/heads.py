"""Remove attention heads whose values are zero: rows of q/k/v, columns of the output."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from condensa.errors import ConfigError
from condensa.schemes.attention import ATTENTION, HeadLayout
from condensa.schemes.groups import ChannelGroup


def dead_heads(layout: HeadLayout, model: nn.Module) -> list[int]:
    """Heads whose value rows (weight and bias) are all zero."""
    value = model.get_submodule(layout.value[0])
    assert isinstance(value, nn.Linear)  # checked by the layout
    dead = []
    for head in range(layout.heads):
        rows = layout.value_rows(head)
        bias = value.bias
        if bool((value.weight.detach()[rows] == 0).all()) and (
            bias is None or bool((bias[rows] == 0).all())
        ):
            dead.append(head)
    return dead


def thin_heads(model: nn.Module, groups: Sequence[ChannelGroup]) -> dict[str, int]:
    """Remove every dead head in place; return the number removed per attention module.

    The output projection is the layer reading the value rows in the dependency
    ``groups`` (its input columns of a removed head go too).

    Raises:
        ConfigError: every head of a module is pruned.

    """
    import torch_pruning as tp  # imported on use, like the dependency graph

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
            tp.prune_linear_out_channels(_linear(model, fqn, "head projections"), rows)
        for fqn, columns in readers.items():
            tp.prune_linear_in_channels(_linear(model, fqn, "the output projection"), columns)
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
    fqn = layout.value[0]
    value_rows = {r for h in dead for r in layout.value_rows(h)}
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


def _linear(model: nn.Module, fqn: str, what: str) -> nn.Linear:
    module = model.get_submodule(fqn)
    if not isinstance(module, nn.Linear):
        raise ConfigError(f"{what} must be nn.Linear, got {type(module).__name__} at {fqn!r}")
    return module
