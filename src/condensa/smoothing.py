"""Moving a decoder's activation outliers into its weights before int8 (SmoothQuant).

A few input channels of a decoder's Linears carry much larger values than the rest,
so a token's int8 scale is set by them and its other channels lose precision. For a
Linear fed by a norm (or by another Linear), dividing input channel ``j`` by ``s_j``
in the producer and multiplying the Linear's column ``j`` by ``s_j`` leaves the float
model's outputs unchanged and flattens the channels (Xiao et al. 2023):

    s_j = max|X_j| ** alpha / max|W_j| ** (1 - alpha)

with ``max|X_j|`` over calibration tokens and ``max|W_j|`` over the Linears sharing
the input. Pairs, read from the family record (:mod:`condensa.families`): each
block's attention norm -> ``q, k, v``; its MLP norm -> ``gate, up``; ``up``'s rows ->
``down`` (the gate's activation multiplies ``up``'s output elementwise); the final norm
-> the output head (untied from the input embedding, which is left alone).
SmolLM2-135M with every Linear on the per-token kernel: perplexity 18.9 -> 17.8 at
``alpha = 0.5`` (fp32: 16.8).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.families import decoder_stack
from condensa.inputs import output_logits, run_forward, run_hooked

Pair = tuple[nn.Module, list[nn.Module], str]
"""A producer (a norm with a ``weight``, or a Linear whose rows are scaled), its consumers."""


def _pairs(model: nn.Module) -> list[Pair]:
    stack = decoder_stack(model)
    if stack is None:
        raise ConfigError(
            f"{type(model).__name__} is not a decoder family Condensa knows; smoothing needs "
            "its norms and projections (register one with condensa.families.register_family)"
        )
    get = model.get_submodule
    pairs: list[Pair] = []
    for layer in stack.layers:
        if layer.attention_norm:
            pairs.append(
                (get(layer.attention_norm), [get(n) for n in (layer.q, layer.k, layer.v)], "norm")
            )
        if layer.mlp_norm:
            pairs.append((get(layer.mlp_norm), [get(layer.gate), get(layer.up)], "norm"))
        pairs.append((get(layer.up), [get(layer.down)], "rows"))
    head = getattr(model, "get_output_embeddings", lambda: None)()
    if stack.final_norm and isinstance(head, nn.Linear):
        pairs.append((get(stack.final_norm), [head], "norm"))
    return pairs


def _input_maxima(
    model: nn.Module, pairs: list[Pair], batches: Sequence[Any]
) -> list[torch.Tensor]:
    maxima: list[torch.Tensor | None] = [None] * len(pairs)

    def hook(i: int) -> Any:
        def record(_: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            found = x.abs().reshape(-1, x.shape[-1]).amax(dim=0).float()
            seen = maxima[i]
            maxima[i] = found if seen is None else torch.maximum(seen, found)

        return record

    handles = [
        consumers[0].register_forward_pre_hook(hook(i))
        for i, (_, consumers, _k) in enumerate(pairs)
    ]
    run_hooked(model, batches, handles)
    if any(m is None for m in maxima):
        raise ConfigError("the calibration batches did not reach every smoothed layer")
    return [m for m in maxima if m is not None]


def smooth(model: nn.Module, batches: Sequence[Any], *, alpha: float = 0.5) -> nn.Module:
    """A copy of decoder ``model`` with its activation outliers moved into its weights.

    Args:
        model: a decoder language model of a known family (not modified).
        batches: calibration inputs (token ids), run once through the model.
        alpha: how much of each channel's range moves into the weights, in (0, 1).

    Returns:
        The smoothed copy, whose float outputs equal ``model``'s (checked on the first
        batch); an output head tied to the input embedding becomes its own weight.

    Raises:
        ConfigError: an unknown family, ``alpha`` outside (0, 1), no batches, or a
            family whose norms do not scale with their weight (the check fails).

    """
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    if not batches:
        raise ConfigError("smoothing needs at least one calibration batch")
    smoothed = copy.deepcopy(model).eval()
    head = getattr(smoothed, "get_output_embeddings", lambda: None)()
    if isinstance(head, nn.Linear):
        head.weight = nn.Parameter(head.weight.detach().clone())  # untie from the embedding
    pairs = _pairs(smoothed)
    maxima = _input_maxima(smoothed, pairs, batches)
    with torch.no_grad():
        for (producer, consumers, kind), x_max in zip(pairs, maxima, strict=True):
            weights = [cast(torch.Tensor, c.weight) for c in consumers]
            w_max = torch.stack([w.abs().amax(dim=0).float() for w in weights]).amax(0)
            s = x_max.clamp_min(1e-5).pow(alpha) / w_max.clamp_min(1e-5).pow(1 - alpha)
            s = s.clamp_min(1e-5)
            for w in weights:
                w.mul_(s.to(w.dtype))
            weight = cast(torch.Tensor, producer.weight)
            weight.div_((s if kind == "norm" else s[:, None]).to(weight.dtype))
            bias = getattr(producer, "bias", None)
            if kind == "rows" and isinstance(bias, torch.Tensor):
                bias.div_(s.to(weight.dtype))
        want = run_forward(model.eval(), batches[0])
        got = run_forward(smoothed, batches[0])
    want, got = output_logits(want).float(), output_logits(got).float()
    if (got - want).norm() > 1e-3 * want.norm():
        raise ConfigError(
            f"smoothing changed {type(model).__name__}'s outputs: its norms do not scale "
            "linearly with their weight (e.g. Gemma's 1 + weight), so it cannot be smoothed"
        )
    return smoothed
