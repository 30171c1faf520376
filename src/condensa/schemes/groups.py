"""Dependency groups as data, and the group-aware plan of the channel schemes.

A :class:`ChannelGroup` is a set of channels that must be removed together: the output
channels of every layer that writes them (the convolutions on both sides of a residual
addition, a depthwise convolution, the BatchNorm after each) and the input channels of
every layer that reads them. Groups are found by
:func:`condensa.thinning.dependency_groups` (on Torch-Pruning's dependency graph); this
module only ranks and masks them, so schemes stay independent of tracing.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.functional import align_keep, n_keep
from condensa.operators import ChannelMask
from condensa.schemes.allocation import AllocationSpec
from condensa.schemes.plan import Plan
from condensa.schemes.selection import Target

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class GroupMember:
    """One tensor a group touches.

    Attributes:
        module: FQN of the module.
        role: ``"out"`` (the module's output channels: weight rows, bias entries,
            BatchNorm scale and shift) or ``"in"`` (a layer reading the channels: weight
            columns, removed by thinning, never masked).
        pairs: ``(index in the module, group channel)`` pairs; a flattened channel maps
            to several input positions, a concatenation to an offset.

    """

    module: str
    role: str
    pairs: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ChannelGroup:
    """Channels removed together.

    Attributes:
        root: FQN of the layer whose output channels name the group.
        size: number of channels.
        members: every tensor the group touches.
        blocked: why the group cannot be removed safely (empty when it can), e.g. a
            LayerNorm normalizes over these channels or they are the model's output.

    """

    root: str
    size: int
    members: tuple[GroupMember, ...]
    blocked: str = ""

    def producers(self, model: nn.Module) -> list[GroupMember]:
        """The members whose weights produce the channels (Linear / convolutions)."""
        return [
            m
            for m in self.members
            if m.role == "out" and isinstance(model.get_submodule(m.module), WEIGHTED)
        ]


def _rows(weight: torch.Tensor, pairs: Sequence[tuple[int, int]], size: int, dim: int):
    """Per group channel: (sum of squares, number of entries) of the indexed slices."""
    w = weight.detach().float().transpose(0, dim) if dim else weight.detach().float()
    per_index = w.reshape(w.shape[0], -1).pow(2).sum(dim=1)
    index = torch.tensor([i for i, _ in pairs], dtype=torch.long)
    channel = torch.tensor([c for _, c in pairs], dtype=torch.long)
    squares = torch.zeros(size).index_add_(0, channel, per_index[index])
    count = torch.zeros(size).index_add_(0, channel, torch.full((len(pairs),), w[0].numel() * 1.0))
    return squares, count


def group_scores(
    group: ChannelGroup, model: nn.Module, weights: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(score, masked weights)`` per channel: L2 norm over every member's slices
    divided by the group's mean, and the number of producer weights the channel owns."""
    squares = torch.zeros(group.size)
    owned = torch.zeros(group.size)
    for member in group.members:
        module = model.get_submodule(member.module)
        if not isinstance(module, WEIGHTED):
            continue
        weight = weights.get(f"{member.module}.weight", module.weight)
        grouped = getattr(module, "groups", 1)
        dim = 0 if member.role == "out" or grouped > 1 else 1
        s, n = _rows(weight, member.pairs, group.size, dim)
        squares += s
        if member.role == "out":
            owned += n
    score = squares.sqrt()
    mean = float(score.mean())
    return (score / mean if mean > 0 else score), owned


def plan_groups(
    groups: Sequence[ChannelGroup],
    model: nn.Module,
    targets: Sequence[Target],
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    allocation: AllocationSpec,
    align: int | None,
) -> Plan:
    """Rank channels group by group and pin the decision on every member tensor.

    A group is pruned only when it is not blocked and every layer producing it is
    selected. ``sparsity`` is the fraction of the producers' weights masked over those
    groups: globally ranked (default; each group keeps its best channel), uniform, or
    per root layer from a ``{regex: sparsity}`` mapping.
    """
    selected = {t.module_name for t in targets}
    usable = [
        g
        for g in groups
        if not g.blocked
        and g.size > 1
        and (producers := g.producers(model))
        and all(m.module in selected for m in producers)
    ]
    ranked = [(g, *group_scores(g, model, weights)) for g in usable]
    drop = _choose(ranked, sparsity, allocation)
    keep: dict[str, torch.Tensor] = {}
    for (group, _, _), channels in zip(ranked, drop, strict=True):
        if align:
            kept = group.size - len(channels)
            channels = channels[: group.size - align_keep(kept, align, group.size, group.root)]
        gone = set(channels)
        for member in group.members:
            if member.role != "out":
                continue
            module = model.get_submodule(member.module)
            rows = keep.setdefault(member.module, torch.ones(_out_size(module), dtype=torch.bool))
            for index, channel in member.pairs:
                if channel in gone:
                    rows[index] = False
    plan = Plan()
    for name, rows in keep.items():
        if bool(rows.all()):
            continue
        module = model.get_submodule(name)
        target = Target(fqn=f"{name}.weight" if name else "weight", module_name=name,
                        param_name="weight", module=module)  # fmt: skip
        plan.add(target, ChannelMask(keep=tuple(rows.tolist())))
    return plan


def _out_size(module: nn.Module) -> int:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ConfigError(f"cannot mask the channels of {type(module).__name__} (no weight)")
    return int(weight.shape[0])


def _choose(
    ranked: Sequence[tuple[ChannelGroup, torch.Tensor, torch.Tensor]],
    sparsity: float,
    allocation: AllocationSpec,
) -> list[list[int]]:
    """Channels to remove per group, lowest score first."""
    orders = [torch.argsort(score, stable=True).tolist() for _, score, _ in ranked]
    if isinstance(allocation, Mapping) or allocation == "uniform":
        out = []
        for (group, _, _), order in zip(ranked, orders, strict=True):
            s = _explicit(group.root, allocation, sparsity)
            out.append(order[: group.size - n_keep(group.size, s)])
        return out
    # global: one threshold over every group's normalized scores; best channel protected
    scores, sizes, owners, positions = [], [], [], []
    for index, ((_, score, owned), order) in enumerate(zip(ranked, orders, strict=True)):
        body = order[:-1]
        scores.append(score[body])
        sizes.append(owned[body])
        owners += [index] * len(body)
        positions += body
    if not owners:
        return [[] for _ in ranked]
    all_scores, all_sizes = torch.cat(scores), torch.cat(sizes)
    budget = math.floor(sparsity * float(sum(float(o.sum()) for _, _, o in ranked)))
    order = torch.argsort(all_scores, stable=True)
    n = int((torch.cumsum(all_sizes[order], 0) <= budget).sum())
    out: list[list[int]] = [[] for _ in ranked]
    for i in order[:n].tolist():
        out[owners[i]].append(positions[i])
    return out


def _explicit(root: str, allocation: AllocationSpec, default: float) -> float:
    if isinstance(allocation, Mapping):
        for key, value in allocation.items():
            if key == root or re.fullmatch(key, root):
                return float(value)
    return default


def bind_groups(scheme: object, groups: Sequence[ChannelGroup]) -> object:
    """A copy of ``scheme`` whose channel schemes rank ``groups`` (others unchanged)."""
    if isinstance(getattr(scheme, "schemes", None), list):  # Compose
        bound = copy.copy(scheme)
        bound.schemes = [bind_groups(s, groups) for s in scheme.schemes]  # type: ignore[attr-defined]
        return bound
    if hasattr(scheme, "groups"):
        bound = copy.copy(scheme)
        bound.groups = tuple(groups)  # type: ignore[attr-defined]
        return bound
    return scheme
