"""``HeadPrune``: remove whole attention heads."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError, SelectionError
from condensa.families import decoder_stack
from condensa.functional import check_sparsity
from condensa.operators import ChannelMask
from condensa.plain import to_plain
from condensa.schemes.attention import ATTENTION, HeadLayout
from condensa.schemes.base import Scheme
from condensa.schemes.decoder import GQA_MODES, choose, head_plan, select_layers
from condensa.schemes.plan import Plan
from condensa.schemes.selection import Target, _patterns


class HeadPrune(Scheme):
    """Attention-head pruning: a head's query, key and value rows go together.

    Each head is scored by the L2 norm of its q/k/v rows, divided by its module's mean
    head score; heads are ranked across modules (``"global"``, each module keeping its
    best head) or per module (``"uniform"``). A masked head's values are zero, so it
    contributes nothing; :func:`condensa.thin` then removes it and updates the head
    counts (``num_attention_heads``, ``all_head_size``, ``num_heads``). Attention
    modules are found by the layouts of :mod:`condensa.schemes.attention` (BERT-style
    separate q/k/v, ViT-style fused qkv; ``register_attention`` adds more).

    Decoder language models with grouped-query attention (the families of
    :mod:`condensa.families`: Llama, Mistral, Qwen, SmolLM) are recognized first;
    ``gqa`` says what goes there (:mod:`condensa.schemes.decoder`).

    Args:
        sparsity: fraction of (query) heads to remove, in ``[0, 1)``.
        allocation: ``"global"`` (default) or ``"uniform"``.
        gqa: for grouped-query attention, ``"groups"`` (default: whole key/value groups
            with their query heads) or ``"query"`` (the same number of query heads from
            every group of a layer; ``allocation="uniform"``).
        include: regexes on attention-module FQNs to restrict the selection.
        exclude: regexes on attention-module FQNs to skip.

    Example:
        >>> small = condensa.compress(bert, HeadPrune(0.3))  # doctest: +SKIP

    """

    def __init__(
        self,
        sparsity: float,
        *,
        allocation: str = "global",
        gqa: str = "groups",
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        if gqa not in GQA_MODES:
            raise ConfigError(f"HeadPrune gqa must be one of {GQA_MODES}, got {gqa!r}")
        self.gqa = gqa
        if allocation not in ("global", "uniform"):
            raise ConfigError(
                f"HeadPrune allocation must be 'global' or 'uniform', got {allocation!r}"
            )
        self.allocation = allocation
        self.include = _patterns(include, "include")
        self.exclude = _patterns(exclude, "exclude")
        self._options: dict[str, Any] = {"sparsity": sparsity}
        if allocation != "global":
            self._options["allocation"] = allocation
        if gqa != "groups":
            self._options["gqa"] = gqa
        for key, value in (("include", include), ("exclude", exclude)):
            if value is not None:
                self._options[key] = value

    def layouts(self, model: nn.Module) -> list[HeadLayout]:
        """The selected attention modules of ``model``."""
        found = [
            layout
            for layout in ATTENTION.layouts(model)
            if (not self.include or any(re.search(p, layout.module) for p in self.include))
            and not any(re.search(p, layout.module) for p in self.exclude)
        ]
        if not found:
            raise SelectionError(
                f"HeadPrune found no attention module in {type(model).__name__} (include="
                f"{list(self.include)}, exclude={list(self.exclude)}); known layouts: separate "
                "query/key/value, q_proj/k_proj/v_proj or q_lin/k_lin/v_lin Linears with "
                "num_attention_heads, num_heads or n_heads, or a fused qkv Linear with "
                "num_heads; decoder blocks (self_attn.q/k/v/o_proj with head_dim) are a family of "
                "condensa.families; teach others with condensa.schemes.register_attention"
            )
        return found

    def plan(self, model: nn.Module, weights: Mapping[str, torch.Tensor] | None = None) -> Plan:
        """Mask the q/k/v rows of the lowest-scoring heads."""
        values = dict(weights or {})
        stack = decoder_stack(model)
        if stack is not None:
            layers = select_layers(stack, self.include, self.exclude, "HeadPrune")
            return head_plan(model, layers, self.sparsity, self.allocation, self.gqa, values)
        layouts = self.layouts(model)
        scores = [_head_scores(layout, model, values) for layout in layouts]
        removed = choose(scores, self.sparsity, self.allocation)
        plan = Plan()
        for layout, heads in zip(layouts, removed, strict=True):
            for fqn, segments in layout.projections:
                module = model.get_submodule(fqn)
                assert isinstance(module, nn.Linear)  # checked by the layout
                keep = torch.ones(module.out_features, dtype=torch.bool)
                for head in heads:
                    keep[layout.rows(head, segments)] = False
                target = Target(f"{fqn}.weight", fqn, "weight", module)
                plan.add(target, ChannelMask(keep=tuple(keep.tolist())))
        return plan

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "HeadPrune", **the options given}``."""
        return {"type": "HeadPrune", **to_plain(self._options)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"HeadPrune({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeadPrune) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _head_scores(
    layout: HeadLayout, model: nn.Module, weights: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """`(heads,)` L2 norm of each head's rows over every projection, over their mean."""
    squares = torch.zeros(layout.heads)
    for fqn, segments in layout.projections:
        module = model.get_submodule(fqn)
        assert isinstance(module, nn.Linear)  # checked by the layout
        weight = weights.get(f"{fqn}.weight", module.weight).detach().float()
        per_row = weight.reshape(weight.shape[0], -1).pow(2).sum(dim=1)
        for head in range(layout.heads):
            squares[head] += per_row[layout.rows(head, segments)].sum()
    score = squares.sqrt()
    mean = float(score.mean())
    return score / mean if mean > 0 else score
