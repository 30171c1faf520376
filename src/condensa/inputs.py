"""Example inputs: one tensor, a tuple of positional inputs, or a dict of keyword arguments.

Token models take integer ids and an attention mask as keywords (``model(**batch)``);
image models take one tensor. Everything that runs a model on example inputs (``thin``,
``stats``, the objectives, the search, ``int8_inference``) calls it through here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError

Inputs = torch.Tensor | Sequence[Any] | Mapping[str, Any]


def check_inputs(example_inputs: object, *, name: str = "example_inputs") -> None:
    """Raise :class:`ConfigError` unless ``example_inputs`` is a tensor, tuple/list or dict."""
    if isinstance(example_inputs, torch.Tensor):
        return
    if isinstance(example_inputs, Mapping):
        if not all(isinstance(k, str) for k in example_inputs):
            raise ConfigError(f"{name} as a dict must have keyword names as keys")
        return
    if isinstance(example_inputs, (tuple, list)) and example_inputs:
        return
    raise ConfigError(
        f"{name} must be a tensor, a non-empty tuple of positional inputs or a dict of "
        f"keyword arguments, got {type(example_inputs).__name__}"
    )


def run_forward(model: nn.Module, example_inputs: Inputs) -> Any:
    """Call ``model`` on a tensor, a tuple of positional inputs or a dict of keywords."""
    if isinstance(example_inputs, Mapping):
        return model(**example_inputs)
    if isinstance(example_inputs, torch.Tensor):
        return model(example_inputs)
    return model(*example_inputs)


def run_hooked(model: nn.Module, batches: Sequence[Inputs], handles: Sequence[Any]) -> None:
    """Run ``batches`` through ``model`` without gradients, then remove the hook ``handles``.

    The handles are removed whatever happens (an error in the model or a hook).
    """
    try:
        with torch.no_grad():
            for batch in batches:
                run_forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()


Compare = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(input, output) -> (error, reference)`` of one module's forward pass."""


def relative_errors(
    model: nn.Module, batches: Sequence[Inputs], compare: Mapping[str, Compare]
) -> dict[str, float]:
    """``sum ||error||² / sum ||reference||²`` per module, over the inputs it sees.

    ``compare[name](input, output)`` gives the error and the reference for one call of
    module ``name`` while ``model`` runs ``batches`` (without gradients; hooks removed
    after).
    """
    modules = dict(model.named_modules())
    sums = {name: [0.0, 0.0] for name in compare}

    def hook(name: str) -> Any:
        def record(_: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            error, reference = compare[name](args[0].detach(), output.detach())
            sums[name][0] += float(error.float().pow(2).sum())
            sums[name][1] += float(reference.float().pow(2).sum())

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in compare]
    run_hooked(model, batches, handles)
    return {name: err / max(total, 1e-30) for name, (err, total) in sums.items()}


def describe(example_inputs: Inputs) -> str:
    """Shapes and dtypes of example inputs, for messages (``dict keys`` named)."""

    def one(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
        return type(value).__name__

    if isinstance(example_inputs, Mapping):
        return "{" + ", ".join(f"{k!s}: {one(v)}" for k, v in example_inputs.items()) + "}"
    if isinstance(example_inputs, torch.Tensor):
        return one(example_inputs)
    return "(" + ", ".join(one(v) for v in example_inputs) + ")"


def checked_forward(model: nn.Module, example_inputs: Inputs) -> Any:
    """:func:`run_forward`, with a model that fails on the inputs as a clear error.

    Raises:
        ConfigError: the forward raised (the inputs' shapes and the model's message named).

    """
    try:
        return run_forward(model, example_inputs)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the model raises, name the inputs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConfigError(
            f"{type(model).__name__} does not accept the example inputs "
            f"{describe(example_inputs)}: {type(exc).__name__}: {first}"
        ) from None


def output_tensors(output: Any) -> list[torch.Tensor]:
    """Every floating tensor in a model output (tensor, tuple, dict, ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if isinstance(output, Mapping):
        return [t for v in output.values() for t in output_tensors(v)]
    if isinstance(output, (tuple, list)):
        return [t for v in output for t in output_tensors(v)]
    return []


def output_logits(output: Any) -> torch.Tensor:
    """The logits of a model output: a tensor, ``.logits``, or the first tuple element."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ConfigError(f"cannot find logits in a model output of type {type(output).__name__}")


def repeat_batch(example_inputs: Inputs, size: int) -> Inputs:
    """``example_inputs`` with every batched tensor tiled to ``size`` rows."""

    def grow(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim():
            reps = -(-size // value.shape[0])
            return value.repeat(reps, *([1] * (value.dim() - 1)))[:size]
        return value

    if isinstance(example_inputs, Mapping):
        return {k: grow(v) for k, v in example_inputs.items()}
    if isinstance(example_inputs, torch.Tensor):
        return grow(example_inputs)
    return tuple(grow(v) for v in example_inputs)


def small_batch(example_inputs: Inputs, rows: int = 2) -> Inputs:
    """``example_inputs`` cut to at most ``rows`` rows (dim 0) of every batched tensor.

    Tracing and equality checks need a forward pass, not a full batch; a large batch
    makes them slow (32 images at 224x224 through ResNet-50: 29 s of thinning, 2.5 s
    with 2).
    """

    def cut(value: Any) -> Any:
        return value[:rows] if isinstance(value, torch.Tensor) and value.dim() else value

    if isinstance(example_inputs, Mapping):
        return {k: cut(v) for k, v in example_inputs.items()}
    if isinstance(example_inputs, torch.Tensor):
        return cut(example_inputs)
    return tuple(cut(v) for v in example_inputs)


def to_device(example_inputs: Inputs, device: torch.device) -> Inputs:
    """``example_inputs`` with every tensor moved to ``device``."""

    def move(value: Any) -> Any:
        return value.to(device) if isinstance(value, torch.Tensor) else value

    if isinstance(example_inputs, Mapping):
        return {k: move(v) for k, v in example_inputs.items()}
    if isinstance(example_inputs, torch.Tensor):
        return move(example_inputs)
    return tuple(move(v) for v in example_inputs)
