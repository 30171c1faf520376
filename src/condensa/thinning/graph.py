"""Channel provenance through a traced model: which producer channels feed each tensor.

Every tensor the graph computes is described by a :class:`Channels` record: its
channel dimension and, for each channel position, the set of producer channels
(``(module name, index)``) it is computed from. Producers are Linear and
convolution layers (their output channels); channel-wise ops (BatchNorm, activations,
pooling, dropout) keep the positions; ``add`` unions them (residual coupling);
``cat`` along the channel dimension concatenates them; ``flatten`` expands each
channel over its spatial positions.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from condensa.errors import UnsupportedModuleError

Source = tuple[str, int]

PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
CHANNELWISE_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.ELU,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool2d,
)
PER_CHANNEL_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
CHANNELWISE_FUNCTIONS: set[Callable[..., Any]] = {
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    nn.functional.relu,
    nn.functional.relu6,
    nn.functional.gelu,
    nn.functional.silu,
    nn.functional.leaky_relu,
    nn.functional.dropout,
    nn.functional.max_pool1d,
    nn.functional.max_pool2d,
    nn.functional.max_pool3d,
    nn.functional.avg_pool1d,
    nn.functional.avg_pool2d,
    nn.functional.avg_pool3d,
    nn.functional.adaptive_avg_pool1d,
    nn.functional.adaptive_avg_pool2d,
    nn.functional.adaptive_max_pool2d,
    nn.functional.hardswish,
}
CHANNELWISE_METHODS = {"relu", "sigmoid", "tanh", "contiguous", "clone", "detach"}
ADD_FUNCTIONS = {operator.add, torch.add, operator.iadd}


@dataclass
class Channels:
    """Provenance of one tensor's channels.

    Attributes:
        dim: the channel dimension (1 for `(N, C, ...)`, -1 for `(..., F)`).
        sources: one set of producer channels per channel position.

    """

    dim: int
    sources: list[frozenset[Source]]


class ThinningGraph:
    """A traced model with channel provenance and the uses of every tensor.

    Args:
        model: a plain (baked) model.
        example_inputs: inputs for shape propagation.

    Raises:
        UnsupportedModuleError: the model cannot be traced, or a producer's channels
            flow into an operation the thinning cannot follow (named, with the op).

    """

    def __init__(self, model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> None:
        try:
            self.gm = fx.symbolic_trace(model)
        except Exception as exc:
            raise UnsupportedModuleError(
                f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {exc}); "
                "thinning needs a forward without data-dependent control flow"
            ) from None
        self.modules = dict(self.gm.named_modules())
        self.values: dict[str, Any] = {}
        self._record(example_inputs)
        self.channels: dict[str, Channels | None] = {}
        #: consumer uses: (node name, module name or "", kind, input Channels)
        self.uses: list[tuple[fx.Node, Channels]] = []
        self._propagate()

    def _record(self, example_inputs: tuple[torch.Tensor, ...]) -> None:
        values = self.values

        class Recorder(fx.Interpreter):
            def run_node(self, n: fx.Node) -> Any:
                result = super().run_node(n)
                values[n.name] = result
                return result

        with torch.no_grad():
            Recorder(self.gm).run(*example_inputs)

    def shape(self, node: fx.Node) -> tuple[int, ...] | None:
        """Shape of ``node``'s recorded value (None if it is not a tensor)."""
        value = self.values.get(node.name)
        return tuple(value.shape) if isinstance(value, torch.Tensor) else None

    def _propagate(self) -> None:
        for node in self.gm.graph.nodes:
            self.channels[node.name] = self._visit(node)

    def _in(self, node: fx.Node, index: int = 0) -> Channels | None:
        arg = node.args[index] if index < len(node.args) else None
        return self.channels.get(arg.name) if isinstance(arg, fx.Node) else None

    def _tracked_inputs(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if self.channels.get(a.name) is not None]

    def _visit(self, node: fx.Node) -> Channels | None:
        if node.op in ("placeholder", "get_attr"):
            return None
        if node.op == "output":
            for arg in self._tracked_inputs(node):
                self.uses.append((node, self.channels[arg.name]))  # type: ignore[arg-type]
            return None
        if node.op == "call_module":
            module = self.modules[str(node.target)]
            incoming = self._in(node)
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.groups > 1:
                depthwise = module.groups == module.in_channels == module.out_channels
                if not depthwise:
                    return self._unsupported(node, f"grouped convolution {node.target}")
                if incoming is not None:
                    self.uses.append((node, incoming))  # per-channel, like BatchNorm
                return incoming
            if isinstance(module, PRODUCERS):
                if incoming is not None:
                    self.uses.append((node, incoming))
                out = module.out_features if isinstance(module, nn.Linear) else module.out_channels
                dim = -1 if isinstance(module, nn.Linear) else 1
                return Channels(dim, [frozenset({(str(node.target), c)}) for c in range(out)])
            if isinstance(module, PER_CHANNEL_MODULES):
                if incoming is not None:
                    self.uses.append((node, incoming))
                return incoming
            if isinstance(module, CHANNELWISE_MODULES):
                return incoming
            if isinstance(module, nn.Flatten):
                return self._flatten(node, incoming, module.start_dim, module.end_dim)
            if isinstance(module, nn.LSTM) and incoming is not None:
                self.uses.append((node, incoming))
                return None
            return self._unsupported(node, f"module {type(module).__name__}")
        if node.op == "call_function":
            target = node.target
            if target in CHANNELWISE_FUNCTIONS:
                return self._in(node)
            if target in ADD_FUNCTIONS:
                return self._add(node)
            if target is torch.cat:
                return self._cat(node)
            if target is torch.flatten:
                start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
                return self._flatten(node, self._in(node), int(start), -1)  # type: ignore[arg-type]
            if target is operator.getitem:
                return self._unsupported(node, "indexing") if self._tracked_inputs(node) else None
            return self._unsupported(node, f"function {getattr(target, '__name__', target)}")
        if node.op == "call_method":
            if node.target in CHANNELWISE_METHODS:
                return self._in(node)
            if node.target == "flatten":
                start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
                return self._flatten(node, self._in(node), int(start), -1)  # type: ignore[arg-type]
            if node.target in ("view", "reshape") and self._in(node) is not None:
                shape = self.shape(node)
                if shape is not None and len(shape) == 2:
                    return self._flatten(node, self._in(node), 1, -1)
            if node.target == "size":
                return None
            return self._unsupported(node, f"method .{node.target}()")
        return None

    def _unsupported(self, node: fx.Node, what: str) -> Channels | None:
        """Raise if tracked channels reach ``node``; an untracked use is harmless (None)."""
        if self._tracked_inputs(node):
            where = (
                node.stack_trace.strip().splitlines()[-1]
                if node.stack_trace
                else node.format_node()
            )
            raise UnsupportedModuleError(
                f"cannot thin through {what} at graph node {node.name!r} (called from {where}); "
                "pruned channels would flow into an operation whose channel mapping is unknown"
            )
        return None

    def _flatten(
        self, node: fx.Node, incoming: Channels | None, start: int, end: int
    ) -> Channels | None:
        if incoming is None:
            return None
        arg = node.args[0]
        shape = self.shape(arg) if isinstance(arg, fx.Node) else None
        if shape is None or start != 1 or end not in (-1, len(shape) - 1) or incoming.dim != 1:
            return self._unsupported(node, "flatten over other dimensions")
        spatial = 1
        for size in shape[2:]:
            spatial *= size
        return Channels(1, [s for s in incoming.sources for _ in range(spatial)])

    def _add(self, node: fx.Node) -> Channels | None:
        inputs = [self.channels.get(a.name) for a in node.all_input_nodes]
        tracked = [c for c in inputs if c is not None]
        if not tracked:
            return None
        if len(tracked) != len(node.all_input_nodes) and any(
            isinstance(a, fx.Node) and self.channels.get(a.name) is None and self.shape(a)
            for a in node.all_input_nodes
        ):
            # an untracked tensor added to tracked channels keeps every channel alive
            return Channels(tracked[0].dim, [frozenset() | {("", -1)} for _ in tracked[0].sources])
        lengths = {len(c.sources) for c in tracked}
        if len(lengths) != 1:
            return self._unsupported(node, "add with broadcasting over channels")
        merged = [frozenset().union(*(c.sources[i] for c in tracked)) for i in range(lengths.pop())]
        return Channels(tracked[0].dim, merged)

    def _cat(self, node: fx.Node) -> Channels | None:
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        parts = [self.channels.get(t.name) if isinstance(t, fx.Node) else None for t in tensors]  # type: ignore[union-attr]
        if all(p is None for p in parts):
            return None
        if dim != 1:
            return self._unsupported(node, f"cat along dim {dim}")
        sources: list[frozenset[Source]] = []
        for tensor, part in zip(tensors, parts, strict=True):  # type: ignore[arg-type]
            if part is None:
                size = self.shape(tensor)[1]  # type: ignore[index]
                sources += [frozenset({("", -1)})] * size  # untracked: always kept
            else:
                sources += part.sources
        return Channels(1, sources)
