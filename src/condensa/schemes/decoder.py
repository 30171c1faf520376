"""Structure of decoder language models: grouped-query heads and gated-MLP width.

The family record (:mod:`condensa.families`) says where each block's projections are;
this module turns a choice of heads or channels into masks:

- heads, ``gqa="groups"``: whole key/value groups go, with every query head reading
  them (rows of q, k, v; input columns of o);
- heads, ``gqa="query"``: the same number of query heads goes from every group of a
  layer (rows of q, columns of o), so each layer keeps one group size;
- MLP width (:class:`MLPPrune`): intermediate channels go from gate and up (rows) and
  down (columns) together.

Masked structures contribute exactly nothing, so :func:`condensa.thin` removes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError, SelectionError
from condensa.families import DecoderLayer, DecoderStack
from condensa.functional import check_sparsity, n_keep
from condensa.operators import ChannelMask
from condensa.plain import to_plain
from condensa.schemes.base import Scheme
from condensa.schemes.plan import Plan
from condensa.schemes.selection import Target, _patterns

GQA_MODES = ("groups", "query")


def _weight(model: nn.Module, fqn: str, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
    module = model.get_submodule(fqn)
    assert isinstance(module, nn.Linear)  # checked by the family record
    return weights.get(f"{fqn}.weight", module.weight).detach().float()


def _normalized(score: torch.Tensor) -> torch.Tensor:
    mean = float(score.mean())
    return score / mean if mean > 0 else score


def head_scores(
    layer: DecoderLayer, model: nn.Module, weights: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """`(heads,)` L2 norm of each query head's q rows and o columns."""
    q = _weight(model, layer.q, weights).pow(2).sum(dim=1)  # (heads * head_dim,)
    o = _weight(model, layer.o, weights).pow(2).sum(dim=0)
    per_row = (q + o).reshape(layer.heads, layer.head_dim).sum(dim=1)
    return per_row.sqrt()


def group_scores(
    layer: DecoderLayer, model: nn.Module, weights: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """`(kv_heads,)` L2 norm of each key/value group: its k, v rows and its query heads."""
    heads = head_scores(layer, model, weights).pow(2).reshape(layer.kv_heads, layer.group)
    k = _weight(model, layer.k, weights).pow(2).sum(dim=1).reshape(layer.kv_heads, -1).sum(1)
    v = _weight(model, layer.v, weights).pow(2).sum(dim=1).reshape(layer.kv_heads, -1).sum(1)
    return (heads.sum(dim=1) + k + v).sqrt()


def choose(scores: Sequence[torch.Tensor], sparsity: float, allocation: str) -> list[list[int]]:
    """Units to remove per layer; each layer keeps at least its best unit.

    ``"uniform"`` removes the same fraction in every layer; ``"global"`` ranks the
    units of all layers by their score over their layer's mean.
    """
    if allocation == "uniform":
        return [
            torch.argsort(s, stable=True)[: s.numel() - n_keep(s.numel(), sparsity)].tolist()
            for s in scores
        ]
    total = sum(s.numel() for s in scores)
    budget = total - n_keep(total, sparsity)
    candidates = []
    for index, s in enumerate(scores):
        order = torch.argsort(s, stable=True).tolist()[:-1]  # the best unit stays
        normal = _normalized(s)
        candidates += [(float(normal[u]), index, u) for u in order]
    candidates.sort()
    out: list[list[int]] = [[] for _ in scores]
    for _, index, unit in candidates[:budget]:
        out[index].append(unit)
    return out


def _keep(size: int, removed: Sequence[int], rows_of: Any) -> tuple[bool, ...]:
    keep = [True] * size
    for unit in removed:
        for row in rows_of(unit):
            keep[row] = False
    return tuple(keep)


def _add(plan: Plan, model: nn.Module, fqn: str, keep: tuple[bool, ...], dim: int) -> None:
    if all(keep):
        return
    module = model.get_submodule(fqn)
    plan.add(Target(f"{fqn}.weight", fqn, "weight", module), ChannelMask(keep=keep, dim=dim))


def select_layers(
    stack: DecoderStack, include: Sequence[str], exclude: Sequence[str], scheme: str
) -> list[DecoderLayer]:
    """The layers whose block FQN matches ``include`` (all when empty) and not ``exclude``.

    Raises:
        SelectionError: no layer is left.

    """
    found = [
        layer
        for layer in stack.layers
        if (not include or any(re.search(p, layer.block) for p in include))
        and not any(re.search(p, layer.block) for p in exclude)
    ]
    if not found:
        raise SelectionError(
            f"{scheme} selected none of the {len(stack.layers)} decoder blocks (include="
            f"{list(include)}, exclude={list(exclude)}); block names look like "
            f"{stack.layers[0].block!r}"
        )
    return found


def head_plan(
    model: nn.Module,
    layers: Sequence[DecoderLayer],
    sparsity: float,
    allocation: str,
    gqa: str,
    weights: Mapping[str, torch.Tensor],
) -> Plan:
    """Masks removing ``sparsity`` of the query heads, by whole groups or within groups."""
    plan = Plan()
    if gqa == "groups":
        removed = choose([group_scores(ly, model, weights) for ly in layers], sparsity, allocation)
        for layer, groups in zip(layers, removed, strict=True):
            heads = [g * layer.group + i for g in groups for i in range(layer.group)]
            q_keep = _keep(layer.heads * layer.head_dim, heads, layer.query_rows)
            kv_keep = _keep(layer.kv_heads * layer.head_dim, groups, layer.kv_rows)
            _add(plan, model, layer.q, q_keep, 0)
            _add(plan, model, layer.k, kv_keep, 0)
            _add(plan, model, layer.v, kv_keep, 0)
            _add(plan, model, layer.o, q_keep, 1)
        return plan
    if allocation != "uniform":
        raise ConfigError(
            "HeadPrune(gqa='query') removes the same number of query heads from every group "
            "of a layer: use allocation='uniform' (or gqa='groups' for a global ranking)"
        )
    for layer in layers:
        scores = head_scores(layer, model, weights).reshape(layer.kv_heads, layer.group)
        drop = layer.group - n_keep(layer.group, sparsity)
        heads = [
            g * layer.group + int(i)
            for g in range(layer.kv_heads)
            for i in torch.argsort(scores[g], stable=True)[:drop]
        ]
        q_keep = _keep(layer.heads * layer.head_dim, heads, layer.query_rows)
        _add(plan, model, layer.q, q_keep, 0)
        _add(plan, model, layer.o, q_keep, 1)
    return plan


class MLPPrune(Scheme):
    """Gated-MLP width of decoder blocks: gate and up rows and down columns go together.

    Each intermediate channel is scored by the L2 norm of its gate row, up row and down
    column; ``"uniform"`` removes ``sparsity`` of every layer's channels, ``"global"``
    ranks them across layers by their score over their layer's mean.

    Args:
        sparsity: fraction of intermediate channels to remove.
        allocation: ``"uniform"`` (default) or ``"global"``.
        include, exclude: regexes on decoder-block FQNs.

    Raises:
        SelectionError: the model is not a decoder family Condensa knows (the error
            says how to register one).

    Example:
        >>> small = condensa.thin(condensa.compress(llm, MLPPrune(0.25)), tokens)  # doctest: +SKIP

    """

    def __init__(
        self,
        sparsity: float,
        *,
        allocation: str = "uniform",
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        if allocation not in ("global", "uniform"):
            raise ConfigError(
                f"MLPPrune allocation must be 'global' or 'uniform', got {allocation!r}"
            )
        self.allocation = allocation
        self.include, self.exclude = _patterns(include, "include"), _patterns(exclude, "exclude")
        self._options = {
            k: v
            for k, v in (
                ("sparsity", sparsity),
                ("allocation", allocation),
                ("include", include),
                ("exclude", exclude),
            )
            if v is not None and not (k == "allocation" and v == "uniform")
        }

    def plan(self, model: nn.Module, weights: Mapping[str, torch.Tensor] | None = None) -> Plan:
        """Mask the lowest-scoring intermediate channels."""
        from condensa.families import decoder_stack

        stack = decoder_stack(model)
        if stack is None:
            raise SelectionError(
                f"MLPPrune found no gated-MLP decoder blocks in {type(model).__name__}; known "
                "families: blocks with mlp.gate_proj/up_proj/down_proj beside self_attn "
                "(Llama, Mistral, Qwen, SmolLM); teach others with "
                "condensa.families.register_family"
            )
        layers = select_layers(stack, self.include, self.exclude, "MLPPrune")
        values = dict(weights or {})
        scores = []
        for layer in layers:
            gate = _weight(model, layer.gate, values).pow(2).sum(dim=1)
            up = _weight(model, layer.up, values).pow(2).sum(dim=1)
            down = _weight(model, layer.down, values).pow(2).sum(dim=0)
            scores.append((gate + up + down).sqrt())
        plan = Plan()
        for layer, channels in zip(
            layers, choose(scores, self.sparsity, self.allocation), strict=True
        ):
            keep = _keep(layer.width, channels, lambda c: (c,))
            _add(plan, model, layer.gate, keep, 0)
            _add(plan, model, layer.up, keep, 0)
            _add(plan, model, layer.down, keep, 1)
        return plan

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "MLPPrune", **the options given}``."""
        return {"type": "MLPPrune", **to_plain(self._options)}

    def __repr__(self) -> str:
        return "MLPPrune(" + ", ".join(f"{k}={v!r}" for k, v in self._options.items()) + ")"
