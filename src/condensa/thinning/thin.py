"""``thin``: remove pruned filters and neurons (and what depends on them) for real speedups."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import cast

import torch
from torch import fx, nn

from condensa.errors import CondensaError, ConfigError
from condensa.masking import bake, masks
from condensa.thinning.graph import PER_CHANNEL_MODULES, PRODUCERS, Source, ThinningGraph
from condensa.thinning.slicers import slicer_for

RESIDUAL_POLICIES = ("strict", "keep")
KEPT: Source = ("", -1)


def _constant(value: torch.Tensor, dim: int, index: int) -> float | None:
    """The constant value of channel ``index`` along ``dim`` of ``value`` (None if it varies)."""
    channel = value.select(dim if dim >= 0 else value.dim() + dim, index)
    first = channel.reshape(-1)[0]
    if float((channel - first).abs().max()) > 1e-6 * max(1.0, float(first.abs())):
        return None
    return float(first)


def _foldable(module: nn.Module) -> bool:
    """Whether a constant input channel's effect is a constant output (foldable into bias)."""
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        padding = module.padding
        return module.groups == 1 and (padding == "valid" or all(p == 0 for p in padding))
    return False


def thin(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    residual: str = "strict",
    atol: float = 1e-5,
) -> nn.Module:
    """A physically smaller dense copy of ``model`` computing the same function.

    Output channels of Linear/conv layers whose weights are entirely zero are removed
    with everything that depends on them: BatchNorm channels, depthwise filters, the
    next layers' input channels (Linear columns for each flattened position, conv
    input channels, LSTM input features). A removed channel whose output is a
    non-zero constant (its bias, or a BatchNorm shift, through the activation) is
    folded into the next layer's bias when that is exact (Linear, or a convolution
    without padding); otherwise the channel is kept. Channels coupled across a
    residual addition are removed only when pruned in every member (``residual=
    "strict"``), or never (``"keep"``). The result is checked against the masked model
    on ``example_inputs`` (``allclose`` with ``atol``). ``model`` is not modified.

    Args:
        model: a compressed (or plain) model.
        example_inputs: inputs for tracing and for the equality check.
        residual: ``"strict"`` or ``"keep"``.
        atol: absolute tolerance of the final check (relative tolerance 1e-4).

    Returns:
        The thinned model: same class, smaller submodules, no masks.

    Raises:
        UnsupportedModuleError: the model cannot be traced, or channels flow into an
            operation the thinning cannot follow (the node and op are named).
        ConfigError: every output channel of a layer is pruned (the layer is named), or
            the masks are unstructured (nothing whole to remove).
        CondensaError: the thinned model does not reproduce the masked outputs.

    Example:
        >>> small = condensa.thin(condensa.compress(model, FilterPrune(0.5)), x)  # doctest: +SKIP

    """
    if residual not in RESIDUAL_POLICIES:
        raise ConfigError(f"residual must be one of {RESIDUAL_POLICIES}, got {residual!r}")
    inputs = (
        (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    )
    had_masks = bool(masks(model))
    plain = bake(model)
    was_training = plain.training
    plain.eval()
    graph = ThinningGraph(plain, inputs)
    producers = {
        str(n.target): graph.modules[str(n.target)]
        for n in graph.gm.graph.nodes
        if n.op == "call_module"
        and isinstance(graph.modules[str(n.target)], PRODUCERS)
        and getattr(graph.modules[str(n.target)], "groups", 1) == 1
    }
    dead: dict[str, torch.Tensor] = {}
    for name, module in producers.items():
        weight = module.weight.detach()
        zero = (weight.reshape(weight.shape[0], -1) == 0).all(dim=1)  # (out,)
        if bool(zero.all()):
            raise ConfigError(
                f"every output channel of {name!r} is pruned: the layer would vanish and the "
                "network would be cut; lower that layer's sparsity or exclude it"
            )
        dead[name] = zero
    if not any(bool(z.any()) for z in dead.values()):
        if had_masks:
            raise ConfigError(
                "no whole filter or neuron is pruned, so nothing can be thinned: unstructured "
                "(or block / N:M) sparsity keeps every channel alive. Use schemes.FilterPrune, "
                "NeuronPrune or StructurePrune to remove whole structures"
            )
        warnings.warn("the model has no masks: thin() returns an equal copy", stacklevel=2)
        return plain.train(was_training)

    removable = {(p, c) for p, zero in dead.items() for c in zero.nonzero().flatten().tolist()}
    removed_positions = _fixpoint(graph, removable, residual)
    reference = graph.values["output"]
    thinned = _rebuild(plain, graph, removable, removed_positions)
    _check(thinned, inputs, reference, atol)
    return thinned.train(was_training)


def _fixpoint(graph: ThinningGraph, removable: set[Source], residual: str) -> dict[str, set[int]]:
    """Shrink ``removable`` until every use can drop its positions; return them per use."""
    changed = True
    removed: dict[str, set[int]] = {}
    while changed:
        changed = False
        removed = {}
        for node, channels in graph.uses:
            module = graph.modules.get(str(node.target)) if node.op == "call_module" else None
            value = (
                graph.values[node.args[0].name]
                if node.args and isinstance(node.args[0], fx.Node)
                else None
            )
            drop: set[int] = set()
            for i, sources in enumerate(channels.sources):
                keep = (
                    KEPT in sources
                    or node.op == "output"
                    or (residual == "keep" and len(sources) > 1)
                    or not sources <= removable
                )
                if (
                    not keep
                    and module is not None
                    and not isinstance(module, PER_CHANNEL_MODULES)
                    and getattr(module, "groups", 1) == 1
                ):
                    constant = _constant(value, channels.dim, i) if value is not None else None
                    keep = constant is None or (constant != 0.0 and not _foldable(module))
                if keep:
                    if sources & removable:
                        removable -= sources
                        changed = True
                else:
                    drop.add(i)
            removed[node.name] = drop
    return removed


def _rebuild(
    plain: nn.Module, graph: ThinningGraph, removable: set[Source], removed: dict[str, set[int]]
) -> nn.Module:
    replacements: dict[str, nn.Module] = {}
    uses = {node.name: (node, channels) for node, channels in graph.uses}
    for node in graph.gm.graph.nodes:
        if node.op != "call_module":
            continue
        name = str(node.target)
        module = graph.modules[name]
        use = uses.get(node.name)
        drop = removed.get(node.name, set())
        keep_in = bias_delta = None
        per_channel = isinstance(module, PER_CHANNEL_MODULES) or getattr(module, "groups", 1) > 1
        if use is not None and drop:
            _, channels = use
            keep_in = torch.ones(len(channels.sources), dtype=torch.bool)
            keep_in[sorted(drop)] = False
            if not per_channel and isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                bias_delta = _folded(module, graph.values[node.args[0].name], channels.dim, drop)
        keep_out = None
        if isinstance(module, PRODUCERS) and not per_channel:
            out = module.weight.shape[0]
            keep_out = torch.tensor([(name, c) not in removable for c in range(out)])
            if bool(keep_out.all()):
                keep_out = None
        if per_channel:
            keep_out, keep_in = keep_in, None
        if keep_out is None and keep_in is None:
            continue
        replacements[name] = slicer_for(module)(module, keep_out, keep_in, bias_delta)
    for name, module in replacements.items():
        parent, _, attr = name.rpartition(".")
        setattr(plain.get_submodule(parent) if parent else plain, attr, module)
    return plain


def _folded(
    module: nn.Module, value: torch.Tensor, dim: int, drop: set[int]
) -> torch.Tensor | None:
    """Bias change that replaces the removed (constant) input channels."""
    weight = cast(torch.Tensor, module.weight).detach()
    delta = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    for i in sorted(drop):
        constant = _constant(value, dim, i)
        if constant:
            column = weight[:, i]
            delta += (
                column.reshape(weight.shape[0], -1).sum(dim=1) if column.dim() > 1 else column
            ) * constant
    return delta if bool(delta.any()) else None


def _check(thinned: nn.Module, inputs: tuple, reference: object, atol: float) -> None:
    """The thinned model must reproduce the masked model's recorded outputs."""
    with torch.no_grad():
        try:
            out = thinned.eval()(*inputs)
        except Exception as exc:
            raise CondensaError(
                f"the thinned model fails on the example inputs ({type(exc).__name__}: {exc}); "
                "a forward with hard-coded shapes (e.g. view(-1, 1024)) cannot be thinned"
            ) from None
    worst = _max_difference(out, reference)
    if worst is None or worst > atol:
        raise CondensaError(
            f"the thinned model differs from the masked model by {worst} (tolerance {atol}); "
            "please report this model"
        )


def _max_difference(a: object, b: object) -> float | None:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            return None
        scale = 1.0 + float(b.abs().max()) if b.numel() else 1.0
        return float((a - b).abs().max()) / scale if a.numel() else 0.0
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        parts = [_max_difference(x, y) for x, y in zip(a, b, strict=True)]
        return None if any(p is None for p in parts) else max(parts, default=0.0)  # type: ignore[type-var]
    return 0.0 if a == b else None
