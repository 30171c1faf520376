"""``thin``: remove pruned channel groups (and what depends on them) for real speedups."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from condensa.errors import CondensaError, ConfigError
from condensa.families import DecoderStack, decoder_stack
from condensa.inputs import Inputs, check_inputs, output_tensors, run_forward, small_batch
from condensa.masking import Mask, bake, masks, register
from condensa.norms import KEPT, follows_mask, is_channel_norm, release
from condensa.schemes.attention import ATTENTION
from condensa.schemes.groups import WEIGHTED, ChannelGroup, channel_dim
from condensa.thinning.decoder import UNEVEN, thin_decoder
from condensa.thinning.groups import CHANNEL_NORMS, build_graph, groups_of, translate
from condensa.thinning.heads import dead_heads, thin_heads

RESIDUAL_POLICIES = ("strict", "keep")
UNFOLLOWED = "removing them alone does not reproduce the masked model"
CONSTANT = (
    "a bias or BatchNorm shift still writes a constant into these channels: pass "
    "example_inputs to compress so the whole group is masked"
)


@dataclass(frozen=True)
class KeptChannels:
    """Pruned channels that thinning kept, and why."""

    root: str
    channels: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class Thinned:
    """The result of :func:`thin_report`.

    Attributes:
        model: the thinned model (a normal module: runs, saves, exports).
        removed: number of channels removed per group root.
        kept: pruned channels left in place, each with the reason.
        heads: number of attention heads removed per attention module.

    """

    model: nn.Module
    removed: dict[str, int] = field(default_factory=dict)
    kept: list[KeptChannels] = field(default_factory=list)
    heads: dict[str, int] = field(default_factory=dict)


def thin(
    model: nn.Module, example_inputs: Inputs, *, residual: str = "strict", atol: float = 1e-5
) -> nn.Module:
    """A physically smaller dense copy of ``model`` computing the same function.

    Every dependency group (channels coupled by residual additions, concatenation,
    depthwise convolutions, BatchNorm, flatten...) whose pruned channels are zero in
    every layer writing them is removed from every layer touching it: output rows,
    BatchNorm entries, the next layers' input columns; module attributes (channel
    counts, features) follow, so the result is a normal module. Pruned channels that
    cannot be removed exactly (a LayerNorm over them, the model's output, attention
    heads, a BatchNorm shift that stays) are kept, with a warning listing them
    (:func:`thin_report` returns the list). The result is checked against the masked
    model on ``example_inputs``. ``model`` is not modified.

    Args:
        model: a compressed (or plain) model.
        example_inputs: a tensor, a tuple of positional inputs or a dict of keyword
            arguments, for tracing and for the equality check.
        residual: ``"strict"`` removes coupled channels pruned in every member;
            ``"keep"`` never removes channels shared by several layers' outputs.
        atol: tolerance of the final check, relative to the output's magnitude.

    Returns:
        The thinned model: same class, smaller submodules, no masks.

    Raises:
        UnsupportedModuleError: the model cannot be traced (the error says why).
        ConfigError: every channel of a group is pruned (the layer is named), or the
            masks are unstructured (nothing whole to remove).
        CondensaError: the thinned model does not reproduce the masked outputs.

    Example:
        >>> masked = condensa.compress(model, FilterPrune(0.5), x)  # doctest: +SKIP
        >>> small = condensa.thin(masked, x)  # doctest: +SKIP

    """
    result = thin_report(model, example_inputs, residual=residual, atol=atol)
    if result.kept:
        lines = "; ".join(f"{k.root!r}: {len(k.channels)} ({k.reason})" for k in result.kept[:6])
        more = f" and {len(result.kept) - 6} more" if len(result.kept) > 6 else ""
        warnings.warn(f"pruned channels kept by thinning: {lines}{more}", stacklevel=2)
    return result.model


def thin_report(
    model: nn.Module, example_inputs: Inputs, *, residual: str = "strict", atol: float = 1e-5
) -> Thinned:
    """:func:`thin`, returning the model with what was removed and what was kept."""
    if residual not in RESIDUAL_POLICIES:
        raise ConfigError(f"residual must be one of {RESIDUAL_POLICIES}, got {residual!r}")
    check_inputs(example_inputs)
    had_masks = bool(masks(model))
    plain = bake(model)
    was_training = plain.training
    plain.eval()
    stack = decoder_stack(plain)
    if stack is not None:  # a known decoder family: its record says what to cut
        result = _thin_decoder(plain, stack, example_inputs, had_masks, atol)
        result.model.train(was_training)
        return result
    graph = build_graph(plain, example_inputs)
    probe, reference = _reference(plain, example_inputs)
    layouts = ATTENTION.layouts(plain)
    heads: dict[str, int] = {}
    if any(dead_heads(layout, plain) for layout in layouts):
        heads = thin_heads(plain, groups_of(graph, plain))
        graph = build_graph(plain, probe)
    kept: list[KeptChannels] = []
    work: list[tuple[str, list[int]]] = []
    any_dead = bool(heads)
    for _, record in translate(graph, plain):
        dead, constant = _dead(record, plain)
        if constant:
            any_dead = True
            kept.append(KeptChannels(record.root, tuple(constant), CONSTANT))
        if not dead:
            continue
        any_dead = True
        reason = record.blocked or _shared(record, plain, residual)
        if not reason and len(dead) == record.size:
            raise ConfigError(
                f"every channel of {record.root!r} (and the layers coupled to it) is pruned: "
                "the layer would vanish and the network would be cut; lower its sparsity "
                "or exclude it"
            )
        if reason:
            kept.append(KeptChannels(record.root, tuple(dead), reason))
        else:
            work.append((record.root, dead))
    if not any_dead:
        if had_masks:
            raise ConfigError(
                "no whole filter or neuron is pruned, so nothing can be thinned: unstructured "
                "(or block / N:M) sparsity keeps every channel alive. Use schemes.FilterPrune, "
                "NeuronPrune, StructurePrune or HeadPrune to remove whole structures"
            )
        warnings.warn("the model has no masks: thin() returns an equal copy", stacklevel=3)
    try:
        thinned = _pruned(plain, probe, work, reference, atol)
    except Exception:  # a mismatch, or Torch-Pruning failing on an odd layer
        # one odd group must not fail the model: find the groups that thin exactly alone
        good = []
        for item in work:
            try:
                _pruned(plain, probe, [item], reference, atol)
                good.append(item)
            except Exception as exc:  # Torch-Pruning's own errors included
                kept.append(KeptChannels(item[0], tuple(item[1]), f"{UNFOLLOWED} ({exc})"[:300]))
        work = good
        thinned = _pruned(plain, probe, work, reference, atol)
    _masked_norms(thinned)
    thinned.train(was_training)
    removed = {root: len(dead) for root, dead in work}
    return Thinned(model=thinned, removed=removed, kept=kept, heads=heads)


def _thin_decoder(
    plain: nn.Module, stack: DecoderStack, example_inputs: Inputs, had_masks: bool, atol: float
) -> Thinned:
    """:func:`thin_report` for a decoder family (no tracing), checked on the inputs."""
    probe, reference = _reference(plain, example_inputs)
    heads, removed, left = thin_decoder(plain, stack)
    if not heads and not removed and had_masks:
        raise ConfigError(
            "no whole attention head, key/value group or MLP channel is pruned, so nothing "
            "can be thinned: use schemes.HeadPrune or schemes.MLPPrune to remove structures"
        )
    _check(plain, probe, reference, atol)
    kept = [KeptChannels(name, tuple(range(n)), UNEVEN) for name, n in left.items()]
    return Thinned(model=plain, removed=removed, kept=kept, heads=heads)


def _reference(plain: nn.Module, example_inputs: Inputs) -> tuple[Inputs, list[torch.Tensor]]:
    """The inputs the checks run on (two rows when the model takes them) and the outputs."""
    with torch.no_grad():
        probe = small_batch(example_inputs)
        try:
            return probe, output_tensors(run_forward(plain, probe))
        except Exception:  # a model that needs the whole batch
            return example_inputs, output_tensors(run_forward(plain, example_inputs))


def _pruned(
    plain: nn.Module,
    inputs: Inputs,
    work: list[tuple[str, list[int]]],
    reference: list[torch.Tensor],
    atol: float,
) -> nn.Module:
    """A copy of ``plain`` with each ``(root, channels)`` group removed, checked."""
    model = copy.deepcopy(plain)
    if work:
        graph = build_graph(model, inputs)
    for root, dead in work:
        module = model.get_submodule(root)
        handler = graph.get_pruner_of_module(module).prune_out_channels
        graph.get_pruning_group(module, handler, dead).prune(record_history=False)
    _settle_norms(model)
    _check(model, inputs, reference, atol)
    return model


def _settle_norms(model: nn.Module) -> None:
    """Norms whose masked channels were all removed become plain norms again.

    Raises:
        CondensaError: a norm lost some of its channels but not exactly the masked ones.

    """
    for name, module in model.named_modules():
        if not follows_mask(module):
            continue
        keep = getattr(module, KEPT)
        width = int(module.normalized_shape[0])
        if width == int(keep.sum()):
            release(module)
        elif width != keep.numel():
            raise CondensaError(
                f"thinning removed {keep.numel() - width} channels of the LayerNorm {name!r} "
                f"but {int((~keep).sum())} are masked there"
            )


def _masked_norms(model: nn.Module) -> None:
    """Norms that still leave channels out of their statistics carry the mask again.

    So the thinned model says what it computes: :func:`condensa.save` records the mask
    and :func:`condensa.load` rebuilds the same norm.
    """
    for module in model.modules():
        if follows_mask(module):
            keep = getattr(module, KEPT).clone()
            register(module, "weight", Mask(keep))
            if isinstance(getattr(module, "bias", None), torch.Tensor):
                register(module, "bias", Mask(keep))


def _dead(group: ChannelGroup, model: nn.Module) -> tuple[list[int], list[int]]:
    """``(dead, constant)`` channels of ``group``.

    Dead: every writer is zero (weights, bias, BatchNorm scale and shift). Constant: the
    Linear/convolution writers are zero but a bias or BatchNorm shift is not.
    """
    alive = torch.zeros(group.size, dtype=torch.bool)
    produced = torch.zeros(group.size, dtype=torch.bool)
    writers = 0
    for member in group.members:
        if member.role == "param":  # a class token or layer scale: its entries must be zero
            rows = _nonzero(model.get_parameter(member.module), member.dim)
            shifted, weighted = torch.zeros_like(rows), False
        else:
            module = model.get_submodule(member.module)
            norm = isinstance(module, CHANNEL_NORMS) or is_channel_norm(module)
            if member.role != "out" or not (isinstance(module, WEIGHTED) or norm):
                continue
            weighted = isinstance(module, WEIGHTED)
            rows = _nonzero(module.get_parameter("weight"), channel_dim(module))
            bias = getattr(module, "bias", None)
            shifted = bias.detach().ne(0) if isinstance(bias, torch.Tensor) else torch.zeros_like(
                rows)  # fmt: skip
        writers += weighted
        for index, channel in member.pairs:
            if index >= rows.numel():  # a mapping that does not fit: the group is blocked
                continue
            alive[channel] |= bool(rows[index] | shifted[index])
            if weighted:
                produced[channel] |= bool(rows[index])
    if not writers:
        return [], []
    dead = (~alive).nonzero().flatten().tolist()
    constant = (~produced & alive).nonzero().flatten().tolist()
    return dead, constant


def _nonzero(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    """Per channel along ``dim``: whether any entry is non-zero."""
    moved = tensor.detach().transpose(0, dim)
    return moved.reshape(moved.shape[0], -1).ne(0).any(dim=1)


def _shared(group: ChannelGroup, model: nn.Module, residual: str) -> str:
    if residual == "keep" and len(group.producers(model)) > 1:
        return 'shared by several layers (residual="keep")'
    return ""


def _check(thinned: nn.Module, inputs: Inputs, reference: list[torch.Tensor], atol: float) -> None:
    """The thinned model must reproduce the masked model's outputs."""
    with torch.no_grad():
        try:
            out = output_tensors(run_forward(thinned.eval(), inputs))
        except Exception as exc:
            raise CondensaError(
                f"the thinned model fails on the example inputs ({type(exc).__name__}: {exc}); "
                "a forward with hard-coded shapes (e.g. view(-1, 1024)) cannot be thinned: "
                "exclude= that layer or teach it with condensa.thinning.register_pruner"
            ) from None
    worst = _max_difference(out, reference)
    if worst is None or worst > atol:
        raise CondensaError(
            f"the thinned model differs from the masked model by {worst} (tolerance {atol}); "
            "please report this model"
        )


def _max_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float | None:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        return None
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x.numel():
            scale = 1.0 + float(y.abs().max())
            worst = max(worst, float((x - y).abs().max()) / scale)
    return worst
