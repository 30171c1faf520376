"""Measured speed of a causal language model: decode tokens per second and prefill latency.

Both time the deployable model (thinned, masks baked) with its key/value cache, on
the first ``prompt`` token ids of the example input; with ``int8=True`` its Linear
layers run the per-token int8 kernel of :mod:`condensa.kernels` (what a quantized
decoder ships as). Compared side by side (``relative``/``compare``, inherited), each
round times the reference and then each candidate, so machine drift cancels.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError, check_int
from condensa.inputs import Inputs
from condensa.kernels import token_int8
from condensa.objectives.measurement import Measurement
from condensa.objectives.registry import register_objective
from condensa.objectives.speed import _Timer
from condensa.threads import threads


def prompt_ids(example_inputs: Inputs, prompt: int) -> torch.Tensor:
    """The first row's first ``prompt`` token ids, shape ``(1, n)``.

    Raises:
        ConfigError: the example input holds no integer token ids.

    """
    ids = example_inputs.get("input_ids") if isinstance(example_inputs, Mapping) else None
    if ids is None and isinstance(example_inputs, (tuple, list)) and example_inputs:
        ids = example_inputs[0]
    if ids is None:
        ids = example_inputs
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.dim() not in (1, 2):
        raise ConfigError(
            "decode and prefill objectives need token ids as the example input (a (batch, "
            f"length) integer tensor or {{'input_ids': ...}}), got {type(ids).__name__}"
        )
    return ids.reshape(-1, ids.shape[-1])[:1, :prompt].long()


def _cache(out: Any) -> Any:
    """The key/value cache of a Hugging Face output (``cache`` or ``past_key_values``)."""
    return out.get("cache", None) or out.get("past_key_values", None)


@dataclass(frozen=True)
class _Generation(_Timer):
    prompt: int = 128
    new_tokens: int = 16
    int8: bool = False
    batch_size: int = 1
    warmup: int = 1
    repeats: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("prompt", self.prompt)
        check_int("new_tokens", self.new_tokens)

    def _runnable(self, model: nn.Module, example_inputs: Inputs) -> nn.Module:
        runnable = super()._runnable(model, example_inputs)
        return token_int8(runnable) if self.int8 else runnable

    def _generate(self, model: nn.Module, ids: torch.Tensor) -> tuple[float, float]:
        """``(prefill seconds, seconds per decoded token)`` of one greedy generation."""
        start = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(self.new_tokens):
            token = out.logits[:, -1:].argmax(-1)
            key = "cache" if "cache" in out else "past_key_values"
            out = model(input_ids=token, use_cache=True, **{key: _cache(out)})
        return prefill, (time.perf_counter() - start) / self.new_tokens

    def _passes(self, runnable: nn.Module, example_inputs: Inputs) -> list[float]:
        """Seconds per pass (per decoded token, or per prefill) of ``repeats`` generations."""
        ids = prompt_ids(example_inputs, self.prompt).to(next(runnable.parameters()).device)
        out = []
        with threads(self.threads), torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(self.warmup):
                self._generate(runnable, ids)
            for _ in range(self.repeats):
                out.append(self._generate(runnable, ids)[self._which])
        return out

    _which = 1


@register_objective("decode")
@dataclass(frozen=True)
class Decode(_Generation):
    """Decoded tokens per second of a causal LM after a ``prompt``-token prefill (median, IQR).

    Args:
        prompt: prompt length taken from the example input's token ids.
        new_tokens: greedily decoded tokens per generation.
        int8: time the model with the per-token int8 Linear kernel.
        threads: torch threads while measuring (None: unchanged).
        warmup: untimed generations first.
        repeats: timed generations.

    """

    def __call__(self, model: nn.Module, example_inputs: Inputs) -> Measurement:
        """Tokens per second of ``model``."""
        times = self._passes(self._runnable(model, example_inputs), example_inputs)
        return Measurement.of([1.0 / t for t in times], "tokens/s")


@register_objective("prefill")
@dataclass(frozen=True)
class Prefill(_Generation):
    """Seconds to run a ``prompt``-token prefill (median, IQR); lower is better.

    Options as :class:`Decode` (``new_tokens`` decoded after each timed prefill).
    """

    new_tokens: int = 1
    _which = 0

    def __call__(self, model: nn.Module, example_inputs: Inputs) -> Measurement:
        """Prefill seconds of ``model``."""
        times = self._passes(self._runnable(model, example_inputs), example_inputs)
        return Measurement.of(times, "s", higher_is_better=False)
