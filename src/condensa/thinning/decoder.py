"""Thinning decoder stacks from their family record: no dependency graph to trace.

A query head whose output-projection columns are zero contributes nothing; a key/value
group none of whose query heads is left is read by nobody; an MLP channel whose
down-projection column is zero contributes nothing. They are sliced out of the
projections, and ``num_key_value_groups`` follows. Within a layer every group keeps the
same number of query heads (grouped-query attention repeats each key/value head that
many times), so when groups lost different numbers of heads the surplus dead heads stay
(masked, reported).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.families import DecoderLayer, DecoderStack


def _zero_columns(linear: nn.Linear) -> torch.Tensor:
    """`(in,)` True where a column of the weight is all zero."""
    return (linear.weight.detach() == 0).all(dim=0)


def _linear(model: nn.Module, fqn: str) -> nn.Linear:
    module = model.get_submodule(fqn)
    assert isinstance(module, nn.Linear)  # checked by the family record
    return module


def _replace(
    model: nn.Module, fqn: str, rows: Sequence[int] | None, cols: Sequence[int] | None
) -> None:
    """Swap the Linear at ``fqn`` for one keeping ``rows`` (outputs) and ``cols`` (inputs)."""
    old = _linear(model, fqn)
    weight = old.weight.detach()
    if rows is not None:
        weight = weight[list(rows)]
    if cols is not None:
        weight = weight[:, list(cols)]
    new = nn.Linear(
        weight.shape[1],
        weight.shape[0],
        bias=old.bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(weight)
        if old.bias is not None:
            bias = old.bias.detach()
            new.bias.copy_(bias[list(rows)] if rows is not None else bias)
    new.train(old.training)
    parent_name, _, name = fqn.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, name, new)


def _heads(model: nn.Module, layer: DecoderLayer) -> tuple[list[int], int, list[int], int]:
    """``(kept query heads, new group size, kept kv heads, dead heads left in place)``."""
    dead_columns = _zero_columns(_linear(model, layer.o))
    dead = {h for h in range(layer.heads) if bool(dead_columns[list(layer.query_rows(h))].all())}
    groups = [list(range(g * layer.group, (g + 1) * layer.group)) for g in range(layer.kv_heads)]
    alive = [g for g, members in enumerate(groups) if not set(members) <= dead]
    if not alive:
        raise ConfigError(
            f"every head of {layer.attention!r} is pruned: the attention would vanish; lower "
            "the head sparsity or exclude that block"
        )
    drop = min(len(set(groups[g]) & dead) for g in alive)
    kept_heads = []
    for g in alive:
        gone = sorted(set(groups[g]) & dead)[:drop]
        kept_heads += [h for h in groups[g] if h not in gone]
    left = sum(len(set(groups[g]) & dead) - drop for g in alive)
    return kept_heads, layer.group - drop, alive, left


UNEVEN = "dead query heads beyond the fewest any group of the layer lost (groups stay equal)"


def thin_decoder(
    model: nn.Module, stack: DecoderStack
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Remove dead heads, key/value groups and MLP channels of ``model`` in place.

    Returns:
        ``(heads, removed, kept)``: query heads removed per attention module, MLP
        channels removed per down projection, and dead query heads kept per attention
        module (see :data:`UNEVEN`); only modules that lost or kept something appear.

    Raises:
        ConfigError: every head of an attention module, or every channel of an MLP,
            is pruned.

    """
    heads: dict[str, int] = {}
    removed: dict[str, int] = {}
    kept: dict[str, int] = {}
    for layer in stack.layers:
        kept_heads, group, kept_kv, left = _heads(model, layer)
        if len(kept_heads) < layer.heads:
            q_rows = [r for h in kept_heads for r in layer.query_rows(h)]
            kv_rows = [r for g in kept_kv for r in layer.kv_rows(g)]
            _replace(model, layer.q, q_rows, None)
            _replace(model, layer.k, kv_rows, None)
            _replace(model, layer.v, kv_rows, None)
            _replace(model, layer.o, None, q_rows)
            attention = model.get_submodule(layer.attention)
            for attr in DecoderStack.ATTENTION_COUNTS:
                if isinstance(getattr(attention, attr, None), int):
                    setattr(attention, attr, group)
            heads[layer.attention] = layer.heads - len(kept_heads)
        if left:
            kept[layer.attention] = left
        dead = _zero_columns(_linear(model, layer.down))
        if bool(dead.all()):
            raise ConfigError(
                f"every channel of {layer.down!r} is pruned: the MLP would vanish; lower "
                "the MLP sparsity or exclude that block"
            )
        if bool(dead.any()):
            channels = [c for c in range(layer.width) if not bool(dead[c])]
            _replace(model, layer.gate, channels, None)
            _replace(model, layer.up, channels, None)
            _replace(model, layer.down, None, channels)
            removed[layer.down] = layer.width - len(channels)
    return heads, removed, kept
