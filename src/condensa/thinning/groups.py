"""Dependency groups found on Torch-Pruning's ``DependencyGraph``.

Torch-Pruning traces the autograd graph of one forward pass, so it follows what a
symbolic tracer cannot (``getattr`` on shapes, ``permute``, slicing, Hugging Face
wrappers) and already knows residual additions, concatenation, splitting, flatten,
depthwise convolutions and normalization layers. Condensa turns its groups into plain
:class:`~condensa.schemes.groups.ChannelGroup` records and decides which ones a mask
can remove *exactly*: a channel whose every writer is zeroed (weights, bias, BatchNorm
scale and shift) is zero everywhere downstream, so removing it changes nothing. Groups
where that is not true are kept and say why (``blocked``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError, UnsupportedModuleError
from condensa.inputs import Inputs, output_tensors, run_forward, small_batch
from condensa.norms import is_channel_norm
from condensa.schemes.groups import (
    WEIGHTED,
    ChannelGroup,
    GroupMember,
    channel_dim,
    is_depthwise,
)

ROOTS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding)
CHANNEL_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
STATISTIC_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.RMSNorm)
ATTENTION_OPS = ("Bmm", "Matmul", "MmBackward", "ScaledDotProduct", "Softmax", "Unbind", "Baddbmm")
"""Autograd op names that mix channels across heads: only whole heads may go there."""


class PrunerRegistry:
    """Torch-Pruning pruners for layer classes it does not know, used by every trace."""

    def __init__(self) -> None:
        self._pruners: dict[type, Any] = {}

    def register(self, layer: type, pruner: Any) -> None:
        """Prune ``layer`` modules with ``pruner``.

        Args:
            layer: an ``nn.Module`` subclass.
            pruner: a ``torch_pruning.pruner.BasePruningFunc`` instance (it slices the
                layer's tensors for given output/input channels and reports its
                channel counts).

        Raises:
            ConfigError: ``layer`` is not a module class or ``pruner`` lacks the methods.

        """
        if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
            raise ConfigError(f"register_pruner needs an nn.Module subclass, got {layer!r}")
        needed = ("prune_out_channels", "prune_in_channels", "get_out_channels", "get_in_channels")
        missing = [m for m in needed if not callable(getattr(pruner, m, None))]
        if missing:
            raise ConfigError(
                f"{pruner!r} is not a Torch-Pruning pruner (missing {missing}); subclass "
                "torch_pruning.pruner.BasePruningFunc"
            )
        self._pruners[layer] = pruner

    def unregister(self, layer: type) -> None:
        """Forget the pruner of ``layer`` (no error if none)."""
        self._pruners.pop(layer, None)

    def pruners(self) -> dict[type, Any]:
        """A copy of the registered pruners."""
        return dict(self._pruners)


PRUNERS = PrunerRegistry()
"""The registry behind :func:`register_pruner`."""


def register_pruner(layer: type, pruner: Any) -> None:
    """Teach thinning a custom layer (see :meth:`PrunerRegistry.register`)."""
    PRUNERS.register(layer, pruner)


def build_graph(model: nn.Module, example_inputs: Inputs) -> Any:
    """Torch-Pruning's dependency graph of ``model`` on ``example_inputs``.

    The trace runs on the first two rows of the inputs (a forward and backward pass of
    a full batch only costs time); if that fails, on all of them.
    """
    try:
        return _build_graph(model, small_batch(example_inputs))
    except UnsupportedModuleError:
        return _build_graph(model, example_inputs)


def _build_graph(model: nn.Module, example_inputs: Inputs) -> Any:
    import torch_pruning as tp

    def forward(m: nn.Module, inputs: Inputs) -> torch.Tensor:
        return sum(t.float().sum() for t in output_tensors(run_forward(m, inputs)))  # type: ignore[return-value]

    stack: list[str] = []

    def enter(name: str) -> Any:
        return lambda *_: stack.append(name)

    def leave(*_: Any) -> None:
        stack.pop()

    handles = []
    modes = {module: module.training for module in model.modules()}
    frozen = [p for p in model.parameters() if not p.requires_grad]
    model.eval()  # no BatchNorm statistics updated, no dropout drawn: the model is not changed
    for p in frozen:  # the trace follows autograd: frozen layers must take part
        p.requires_grad_(True)
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        with warnings.catch_warnings(), torch.enable_grad():
            warnings.simplefilter("ignore")  # "unwrapped parameters": handled as blocked groups
            return tp.DependencyGraph().build_dependency(
                model,
                example_inputs=example_inputs,
                forward_fn=forward,
                customized_pruners=PRUNERS.pruners(),
                verbose=False,
            )
    except Exception as exc:
        failed = stack[1:] if len(stack) > 1 else []
        where = (
            f" in module {failed[-1]!r} ({type(model.get_submodule(failed[-1])).__name__})"
            if failed
            else ""
        )
        raise UnsupportedModuleError(
            f"cannot trace the model to find its channel groups: {type(exc).__name__}{where}: "
            f"{exc}. Check that example_inputs run the model (a tensor, a tuple or a dict of "
            "keyword arguments); exclude= that layer from the scheme, or teach thinning a custom "
            "layer with condensa.thinning.register_pruner"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
        for p in frozen:
            p.requires_grad_(False)


def dependency_groups(model: nn.Module, example_inputs: Inputs) -> tuple[ChannelGroup, ...]:
    """Every group of coupled channels of ``model``, each saying if it can be removed.

    Args:
        model: any ``nn.Module`` (masks, if any, are read through).
        example_inputs: a tensor, a tuple of positional inputs or a dict of keyword
            arguments, as the model's forward takes them.

    Returns:
        One :class:`~condensa.schemes.groups.ChannelGroup` per set of output channels
        of a Linear or convolution (and what is coupled to them).

    Raises:
        UnsupportedModuleError: the forward pass cannot be traced.

    """
    graph = build_graph(model, example_inputs)
    return tuple(groups_of(graph, model))


def groups_of(graph: Any, model: nn.Module) -> list[ChannelGroup]:
    """Translate Torch-Pruning's groups into records named by module FQNs."""
    return [record for _, record in translate(graph, model)]


def translate(graph: Any, model: nn.Module) -> Iterator[tuple[Any, ChannelGroup]]:
    """``(Torch-Pruning group, record)`` for every group of ``graph``."""
    names = {module: name for name, module in model.named_modules()}
    params = {p: name for name, p in model.named_parameters()}
    dims = {id(p): int(dim) for p, dim in graph.unwrapped_parameters}
    for group in graph.get_all_groups(root_module_types=ROOTS):
        root = group.items[0].dep.target.module
        root_name = names.get(root, "?")
        size = len(group.items[0].idxs)
        members: dict[tuple[str, str], dict[tuple[int, int], None]] = {}
        blocked = ""
        for item in group.items:
            node = item.dep.target
            module = node.module
            outgoing = graph.is_out_channel_pruning_fn(item.dep.handler)
            reason = _blocker(node, module, names, params, outgoing)
            blocked = blocked or reason
            if isinstance(module, nn.Parameter) and module in params:
                key = (params[module], f"param:{dims.get(id(module), -1)}")
            elif module in names and isinstance(module, (*WEIGHTED, *CHANNEL_NORMS)):
                key = (names[module], "out" if outgoing else "in")
            elif module in names and is_channel_norm(module):
                key = (names[module], "out")  # its scale and shift, and its statistics
            else:
                continue
            pairs = members.setdefault(key, {})
            pairs.update(dict.fromkeys(zip(item.idxs, item.root_idxs, strict=True)))
        records = tuple(
            _member(name, role, tuple(pairs)) for (name, role), pairs in members.items()
        )
        blocked = blocked or _misfit(records, model)
        couplings = _couplings(graph, model, records, names)
        yield group, ChannelGroup(root_name, size, records, blocked, couplings)


def _member(name: str, role: str, pairs: tuple[tuple[int, int], ...]) -> GroupMember:
    if role.startswith("param:"):
        return GroupMember(module=name, role="param", pairs=pairs, dim=int(role[6:]))
    return GroupMember(module=name, role=role, pairs=pairs)


def _writer(node: Any) -> Any:
    """The Linear/convolution whose output reaches ``node`` through one-input ops."""
    current = node.inputs[0] if len(node.inputs) == 1 else None
    for _ in range(16):
        if current is None:
            return None
        if isinstance(current.module, WEIGHTED):
            return current.module
        current = current.inputs[0] if len(current.inputs) == 1 else None
    return None


def _couplings(
    graph: Any, model: nn.Module, members: tuple[GroupMember, ...], names: dict[Any, str]
) -> tuple[tuple[int, int], ...]:
    """Group channels the traced mapping lists apart but one layer ties together.

    A BatchNorm or a depthwise convolution computes its channel ``i`` from channel ``i``
    of the layer writing its input; when both are members of the group and the trace
    maps that index to two different group channels (GhostNet's primary and cheap
    halves of a concatenation), those channels must go together.
    """
    outs = {m.module: m for m in members if m.role == "out"}
    pairs: list[tuple[int, int]] = []
    for name, member in outs.items():
        module = model.get_submodule(name)
        one_to_one = is_depthwise(module) and module.out_channels == module.in_channels
        if not (one_to_one or isinstance(module, CHANNEL_NORMS)):
            continue
        node = graph.module2node.get(module)
        source = names.get(_writer(node)) if node is not None else None
        if source is None or source not in outs or source == name:
            continue
        read = dict(outs[source].pairs)
        pairs += [(read[i], c) for i, c in member.pairs if i in read and read[i] != c]
    return tuple(pairs)


def _width(module: nn.Module, role: str) -> int | None:
    """Channels of ``module`` on the side ``role`` names (None when unknown)."""
    if role == "out":
        weight = getattr(module, "weight", None)
        return int(weight.shape[channel_dim(module)]) if isinstance(weight, torch.Tensor) else None
    for attr in ("in_features", "in_channels", "num_features", "input_size"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return None


def _misfit(members: tuple[GroupMember, ...], model: nn.Module) -> str:
    """A reason when the traced index mapping does not fit a member's channels."""
    for member in members:
        if member.role == "param":
            shape = model.get_parameter(member.module).shape
            width = int(shape[member.dim]) if -len(shape) <= member.dim < len(shape) else -1
            if any(not 0 <= i < width for i, _ in member.pairs):
                return f"the traced channel mapping does not fit the parameter {member.module!r}"
            continue
        known = _width(model.get_submodule(member.module), member.role)
        if known is not None and any(not 0 <= i < known for i, _ in member.pairs):
            return f"the traced channel mapping does not fit {member.module!r} ({known} channels)"
    return ""


def _blocker(
    node: Any, module: Any, names: dict, params: dict, outgoing: bool
) -> str:  # one reason per kind of node; empty when removing the channels is exact
    op = node.grad_fn.name() if node.grad_fn is not None else ""
    if not node.outputs and outgoing:
        return f"the channels are the model's output ({names.get(module, op)})"
    if type(module).__name__ == "_OutputOp":
        return "the channels are the model's output"
    if isinstance(module, nn.Parameter):
        return "" if module in params else "the channels meet a parameter the model does not name"
    if isinstance(module, STATISTIC_NORMS) and not is_channel_norm(module):
        return (
            f"{type(module).__name__} {names.get(module)!r} normalizes over these channels "
            "(removing one changes its statistics)"
        )
    if isinstance(module, CHANNEL_NORMS) and module.weight is None:
        return f"BatchNorm {names.get(module)!r} has no affine scale to zero"
    if isinstance(module, nn.Module) and not isinstance(
        module, (*WEIGHTED, *CHANNEL_NORMS, *STATISTIC_NORMS)
    ):
        if not type(module).__name__.startswith("_") and module not in names:
            return f"unknown layer {type(module).__name__}"
        recurrent = isinstance(module, (nn.LSTM, nn.GRU, nn.RNN))  # inputs can go
        if outgoing and (recurrent or isinstance(module, nn.MultiheadAttention)):
            return f"{type(module).__name__} {names.get(module)!r} (not thinned by channel groups)"
    if any(name in op for name in ATTENTION_OPS):
        return f"attention mixes these channels ({op}); remove whole heads with HeadPrune"
    return ""
