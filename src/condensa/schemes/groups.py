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
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError, SelectionError
from condensa.functional import align_keep, n_keep
from condensa.operators import ChannelMask
from condensa.schemes.allocation import AllocationSpec, key_matches, lowest_reaching
from condensa.schemes.plan import Plan
from condensa.schemes.selection import Target

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)
"""Layers whose weights write a group's channels (an Embedding along its dimension)."""


def channel_dim(module: nn.Module) -> int:
    """The weight dimension holding a writer's output channels."""
    return 1 if isinstance(module, nn.Embedding) else 0


def is_depthwise(module: nn.Module) -> bool:
    """A convolution with one group per input channel (a channel multiplier allowed)."""
    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and 1 < module.groups == (
        module.in_channels
    )


@dataclass(frozen=True)
class GroupMember:
    """One tensor a group touches.

    Attributes:
        module: FQN of the module (of the parameter, for role ``"param"``).
        role: ``"out"`` (the module's output channels: weight rows, bias entries,
            BatchNorm and LayerNorm scale and shift), ``"in"`` (a layer reading the
            channels: weight columns, removed by thinning, never masked) or ``"param"``
            (a free parameter added to or multiplying the channels: a class token, a
            position embedding, a layer scale; masked along ``dim``).
        pairs: ``(index in the module, group channel)`` pairs; a flattened channel maps
            to several input positions, a concatenation to an offset.
        dim: the dimension of a free parameter holding the channels.

    """

    module: str
    role: str
    pairs: tuple[tuple[int, int], ...]
    dim: int = 0

    def __repr__(self) -> str:
        """One line: the module, its role and how many channel pairs (not the pairs)."""
        dim = f", dim={self.dim}" if self.role == "param" else ""
        return f"GroupMember({self.module!r}, {self.role}, {len(self.pairs)} pairs{dim})"


@dataclass(frozen=True)
class ChannelGroup:
    """Channels removed together.

    Attributes:
        root: FQN of the layer whose output channels name the group.
        size: number of channels.
        members: every tensor the group touches.
        blocked: why the group cannot be removed safely (empty when it can), e.g. a
            LayerNorm normalizes over these channels or they are the model's output.
        couplings: pairs of the group's channels that must go together although the
            traced index mapping lists them apart (a depthwise convolution computing
            channel ``j + half`` of a concatenation from channel ``j``, as in GhostNet).

    """

    root: str
    size: int
    members: tuple[GroupMember, ...]
    blocked: str = ""
    couplings: tuple[tuple[int, int], ...] = ()

    def __repr__(self) -> str:
        """One line: root, channels, member count by role, and why it is blocked."""
        roles = {r: sum(m.role == r for m in self.members) for r in ("out", "in", "param")}
        touched = ", ".join(f"{n} {r}" for r, n in roles.items() if n)
        blocked = f", blocked: {self.blocked}" if self.blocked else ""
        return f"ChannelGroup({self.root!r}, {self.size} channels, {touched}{blocked})"

    def producers(self, model: nn.Module) -> list[GroupMember]:
        """The members whose weights produce the channels (Linear, convolutions, Embedding)."""
        return [
            m
            for m in self.members
            if m.role == "out" and isinstance(model.get_submodule(m.module), WEIGHTED)
        ]


def _rows(
    weight: torch.Tensor, pairs: Sequence[tuple[int, int]], size: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
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
    """``(score, masked weights)`` per channel of ``group``.

    The score is the L2 norm over every member's slices divided by the group's mean;
    the weights are the producer rows the channel owns (what its mask zeroes).
    """
    squares = torch.zeros(group.size)
    owned = torch.zeros(group.size)
    for member in group.members:
        if member.role == "param":
            continue
        module = model.get_submodule(member.module)
        if not isinstance(module, WEIGHTED):
            continue
        weight = weights.get(f"{member.module}.weight", module.weight)
        grouped = getattr(module, "groups", 1)
        dim = channel_dim(module) if member.role == "out" or grouped > 1 else 1
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
    if not usable:
        reasons = sorted({g.blocked for g in groups if g.blocked})
        raise SelectionError(
            f"no dependency group of {type(model).__name__} can be pruned with this selection "
            f"({len(groups)} groups; blocked because: {'; '.join(reasons[:4]) or 'none'}); "
            "select other layers, or use HeadPrune / unstructured Prune"
        )
    _report_skipped(groups, usable, model, targets)
    ranked = [r for g in usable if (r := _rank(g, model, weights)) is not None]
    keep: dict[str, tuple[Target, int, torch.Tensor]] = {}
    for entry, chosen in zip(ranked, _choose(ranked, sparsity, allocation), strict=True):
        gone = _finish(entry, chosen, align)
        for member in entry.group.members:
            if member.role == "in":
                continue
            target, dim, width = _target(model, member)
            rows = keep.setdefault(target.fqn, (target, dim, torch.ones(width, dtype=torch.bool)))[
                2
            ]
            for index, channel in member.pairs:
                if channel in gone:
                    rows[index] = False
    plan = Plan()  # every writer of a usable group, pruned or not: one target set per model
    for target, dim, rows in keep.values():
        plan.add(target, ChannelMask(keep=tuple(rows.tolist()), dim=dim))
    return plan


def _report_skipped(
    groups: Sequence[ChannelGroup],
    usable: Sequence[ChannelGroup],
    model: nn.Module,
    targets: Sequence[Target],
) -> None:
    """Warn how much of the selected weight the groups that cannot be pruned hold, and why."""
    selected = {t.module_name: t.weight.numel() for t in targets}
    chosen = {id(g) for g in usable}
    why: dict[str, int] = {}
    unreached = 0
    for g in groups:
        producers = [m.module for m in g.producers(model) if m.module in selected]
        if id(g) in chosen or not producers or "model's output" in g.blocked:
            continue  # the outputs of a model are never pruned: no news
        reason = g.blocked or ("one channel" if g.size <= 1 else "a producer is not selected")
        why[reason] = why.get(reason, 0) + 1
        unreached += sum(selected[p] for p in set(producers))
    if unreached:
        total = sum(selected.values())
        reasons = "; ".join(f"{n} x {r}" for r, n in sorted(why.items(), key=lambda x: -x[1]))
        warnings.warn(
            f"{sum(why.values())} of {len(groups)} channel groups cannot be pruned, holding "
            f"{unreached / max(total, 1):.0%} of the selected weights ({reasons}); the sparsity "
            "applies to the rest (HeadPrune or unstructured Prune reach the others)",
            stacklevel=4,
        )


def _target(model: nn.Module, member: GroupMember) -> tuple[Target, int, int]:
    """The tensor a writing member's channel mask goes on, its channel dimension and width."""
    if member.role == "param":
        owner_name, _, leaf = member.module.rpartition(".")
        owner = model.get_submodule(owner_name)
        target = Target(fqn=member.module, module_name=owner_name, param_name=leaf, module=owner)
        return target, member.dim, int(target.weight.shape[member.dim])
    module = model.get_submodule(member.module)
    name = member.module
    target = Target(fqn=f"{name}.weight" if name else "weight", module_name=name,
                    param_name="weight", module=module)  # fmt: skip
    return target, channel_dim(module), _out_size(module)


@dataclass(frozen=True)
class _Ranked:
    """A group's removable units (channels that go together), scored."""

    group: ChannelGroup
    units: list[list[int]]
    score: torch.Tensor  # per unit, normalized by the group's mean
    size: torch.Tensor  # masked weights per unit
    channel_score: torch.Tensor
    blocks: list[int] | None  # per channel: block of a grouped convolution's output


def _rank(
    group: ChannelGroup, model: nn.Module, weights: Mapping[str, torch.Tensor]
) -> _Ranked | None:
    """Units and scores of ``group``; None when a grouped convolution cannot be honoured.

    A grouped convolution (``groups=G``, not depthwise) reading the channels sees the
    same input offsets in every one of its G blocks, so channel ``j`` goes with
    ``j + block``, ``j + 2 block``... (one unit). One writing them must keep equal
    counts per block (balanced after ranking).
    """
    score, owned = group_scores(group, model, weights)
    units: list[list[int]] | None = None
    blocks: list[int] | None = None
    for member in group.members:
        if member.role == "param":
            continue
        module = model.get_submodule(member.module)
        if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or module.groups == 1:
            continue
        if is_depthwise(module):  # channel to channel
            continue
        width = module.in_channels // module.groups if member.role == "in" else (
            module.out_channels // module.groups)  # fmt: skip
        channel = dict(member.pairs)
        if member.role == "in":
            offsets = [[channel.get(b * width + j) for b in range(module.groups)]
                       for j in range(width)]  # fmt: skip
            if units is not None or any(c is None for u in offsets for c in u):
                return None
            units = [[c for c in u if c is not None] for u in offsets]
        else:
            blocks = [0] * group.size
            for index, c in member.pairs:
                blocks[c] = index // width
    if group.couplings:
        if units is not None:
            return None  # strided units and couplings together: not supported
        units = _coupled_units(group.size, group.couplings)
    units = units or [[c] for c in range(group.size)]
    unit_score = torch.stack([score[u].mean() for u in units])  # per channel, like singletons
    unit_size = torch.stack([owned[u].sum() for u in units])
    return _Ranked(group, units, unit_score, unit_size, score, blocks)


def _coupled_units(size: int, couplings: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Channels joined by ``couplings`` (transitively), each set one unit."""
    parent = list(range(size))

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for a, b in couplings:
        parent[find(a)] = find(b)
    sets: dict[int, list[int]] = {}
    for c in range(size):
        sets.setdefault(find(c), []).append(c)
    return list(sets.values())


def _finish(entry: _Ranked, chosen: list[int], align: int | None) -> set[int]:
    """Channels of the chosen units, balanced over grouped-conv blocks and aligned."""
    gone = [c for u in chosen for c in entry.units[u]]
    size = entry.group.size
    if len(entry.units) != size:  # strided units: balanced by construction
        return set(gone)
    order = torch.argsort(entry.channel_score, stable=True).tolist()
    count = len(gone)
    if align:
        count = size - align_keep(size - count, align, size, what=entry.group.root)
    if entry.blocks is None:
        return set(order[:count])
    n_blocks = max(entry.blocks) + 1
    # every block loses the same count, at least its share (rounded up), and keeps one
    quota = min(-(-count // n_blocks), size // n_blocks - 1)
    picked: list[int] = []
    for block in range(n_blocks):
        picked += [c for c in order if entry.blocks[c] == block][:quota]
    return set(picked)


def _out_size(module: nn.Module) -> int:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ConfigError(f"cannot mask the channels of {type(module).__name__} (no weight)")
    return int(weight.shape[channel_dim(module)])


def _choose(
    ranked: Sequence[_Ranked], sparsity: float, allocation: AllocationSpec
) -> list[list[int]]:
    """Units to remove per group, lowest score first."""
    orders = [torch.argsort(r.score, stable=True).tolist() for r in ranked]
    if isinstance(allocation, Mapping) or allocation == "uniform":
        out = []
        for r, order in zip(ranked, orders, strict=True):
            share = _explicit(r.group.root, allocation, sparsity)
            out.append(order[: len(order) - n_keep(len(order), share)])
        return out
    # global: one threshold over every group's normalized scores; best unit protected
    scores, sizes, owners, positions = [], [], [], []
    for index, (r, order) in enumerate(zip(ranked, orders, strict=True)):
        body = order[:-1]
        scores.append(r.score[body])
        sizes.append(r.size[body])
        owners += [index] * len(body)
        positions += body
    if not owners:
        return [[] for _ in ranked]
    total = int(sum(float(r.size.sum()) for r in ranked))
    budget = total - n_keep(total, sparsity)
    chosen: list[list[int]] = [[] for _ in ranked]
    for i in lowest_reaching(torch.cat(scores), torch.cat(sizes), budget).tolist():
        chosen[owners[i]].append(positions[i])
    return chosen


def _explicit(root: str, allocation: AllocationSpec, default: float) -> float:
    if isinstance(allocation, Mapping):
        for key, value in allocation.items():
            if key_matches(key, root):
                return float(value)
    return default


def bind_groups(scheme: Any, groups: Sequence[ChannelGroup]) -> Any:
    """A copy of ``scheme`` whose channel schemes rank ``groups`` (others unchanged)."""
    if isinstance(getattr(scheme, "schemes", None), list):  # Compose
        bound = copy.copy(scheme)
        bound.schemes = [bind_groups(s, groups) for s in scheme.schemes]
        return bound
    if hasattr(scheme, "groups"):
        bound = copy.copy(scheme)
        bound.groups = tuple(groups)
        return bound
    return scheme
