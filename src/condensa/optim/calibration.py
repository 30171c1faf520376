"""Walking a model block by block on calibration inputs, for the one-shot methods.

A decoder stack is a list of identical blocks; a one-shot method compresses them in
order, each block seeing the outputs of the blocks before it *as already compressed*
(the error of earlier blocks is part of what later blocks reconstruct). Only one
block's inputs, outputs and input statistics are held at a time.

Models without such a list are one block: the whole model, fed the calibration
batches themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.inputs import run_forward

MEMINFO = "/proc/meminfo"

Call = tuple[tuple[Any, ...], dict[str, Any]]
"""The positional and keyword arguments of one call of a block."""


def blocks_of(model: nn.Module) -> tuple[str, list[nn.Module]] | None:
    """``(prefix, blocks)``: the ``nn.ModuleList`` of 2+ blocks holding the most parameters.

    ``prefix`` is the list's FQN (its blocks are ``prefix.0``, ``prefix.1``...). None
    when the model has no such list (it is then walked as one block).
    """
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) >= 2:
            kinds = {type(m) for m in module}
            size = sum(p.numel() for p in module.parameters())
            if len(kinds) == 1 and (best is None or size > best[0]):
                best = (size, name, module)
    if best is None:
        return None
    return best[1], list(best[2])


class _Stop(Exception):
    """Raised by the capture hook: the rest of the model need not run."""


def capture_inputs(model: nn.Module, block: nn.Module, batches: Sequence[Any]) -> list[Call]:
    """The arguments ``block`` is called with when ``model`` runs each batch.

    The model is run only up to the block (a hook stops it there).
    """
    calls: list[Call] = []

    def hook(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls.append((tuple(args), dict(kwargs)))
        raise _Stop

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for batch in batches:
                try:
                    run_forward(model, batch)
                except _Stop:
                    continue
    finally:
        handle.remove()
    if len(calls) != len(batches):
        raise ConfigError(
            f"the calibration batches reached block {type(block).__name__} {len(calls)} "
            f"times out of {len(batches)}; one-shot methods need a model whose forward "
            "calls its blocks once per batch"
        )
    return calls


def _hidden(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ConfigError(
        f"a block returned {type(output).__name__}; one-shot methods need blocks that "
        "return their hidden states (a tensor, or a tuple starting with one)"
    )


def run_block(block: nn.Module, calls: Sequence[Call]) -> list[Call]:
    """The calls of the next block: each call's hidden states replaced by ``block``'s output."""
    out = []
    with torch.no_grad():
        for args, kwargs in calls:
            hidden = _hidden(block(*args, **kwargs))
            if args:
                out.append(((hidden, *args[1:]), kwargs))
            else:
                out.append(((), {**kwargs, "hidden_states": hidden}))
    return out


@dataclass
class InputStatistics:
    """Sum of ``x xᵀ`` over a Linear's input rows (``hessian``) and how many rows (``count``)."""

    hessian: torch.Tensor
    count: int = 0

    def add(self, x: torch.Tensor) -> None:
        """Accumulate a batch of inputs `(..., cols)`."""
        rows = x.detach().reshape(-1, x.shape[-1]).float()
        self.hessian.addmm_(rows.T, rows)
        self.count += rows.shape[0]


def statistics(run: Any, modules: dict[str, nn.Linear]) -> dict[str, InputStatistics]:
    """Input statistics of ``modules`` (by FQN) while ``run()`` executes.

    Memory: one `(in_features, in_features)` float32 matrix per module.
    """
    found = {
        fqn: InputStatistics(torch.zeros(m.in_features, m.in_features, device=m.weight.device))
        for fqn, m in modules.items()
    }
    handles = [
        module.register_forward_pre_hook(lambda _, args, stats=found[fqn]: stats.add(args[0]))
        for fqn, module in modules.items()
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return found


def walk(model: nn.Module, batches: Sequence[Any]) -> Iterator[tuple[str, nn.Module, Any]]:
    """Yield ``(prefix, block, run)`` for each block in order; ``run()`` feeds it its inputs.

    Between two yields the caller compresses the block; the walk then computes the
    block's outputs *as compressed* and feeds them to the next block. A model without a
    block list is yielded once, as ``("", model, run)``.
    """
    found = blocks_of(model)
    if found is None:

        def run_model() -> None:
            with torch.no_grad():
                for batch in batches:
                    run_forward(model, batch)

        yield "", model, run_model
        return
    prefix, blocks = found
    calls = capture_inputs(model, blocks[0], batches)
    for index, block in enumerate(blocks):

        def run(block: nn.Module = block, calls: Sequence[Call] = calls) -> None:
            with torch.no_grad():
                for args, kwargs in calls:
                    block(*args, **kwargs)

        yield f"{prefix}.{index}" if prefix else str(index), block, run
        if index + 1 < len(blocks):
            calls = run_block(block, calls)


def available_bytes() -> int | None:
    """Memory the system can give now (``MemAvailable`` on Linux), or None when unknown."""
    try:
        with open(MEMINFO, encoding="ascii") as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def estimate_bytes(model: nn.Module, batches: Sequence[Any]) -> int:
    """Memory a one-shot walk over ``batches`` needs beyond the model, in bytes (a floor).

    The compressed copy of the model, the hidden states of every calibration token
    twice (a block's inputs and outputs; the hidden width is the input embedding's),
    and the input statistics of the largest block's Linears (``in × in`` float32 each).
    """
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    embed = getattr(model, "get_input_embeddings", lambda: None)()
    width = getattr(embed, "embedding_dim", 0) if isinstance(embed, nn.Module) else 0
    tokens = sum(
        b.numel() for b in batches if isinstance(b, torch.Tensor) and not b.is_floating_point()
    )
    found = blocks_of(model)
    blocks = found[1] if found else [model]
    stats = max(
        sum(m.in_features**2 * 4 for m in block.modules() if isinstance(m, nn.Linear))
        for block in blocks
    )
    return params + 2 * tokens * width * 4 + stats


def check_memory(model: nn.Module, batches: Sequence[Any]) -> None:
    """Refuse a calibration that would not fit in the memory available now.

    Raises:
        ConfigError: the estimate (:func:`estimate_bytes`) is above what is available,
            with both numbers.

    """
    available = available_bytes()
    need = estimate_bytes(model, batches)
    if available is not None and need > available:
        raise ConfigError(
            f"this calibration needs about {need / 2**30:.1f} GiB (the model copy, "
            f"{sum(b.numel() for b in batches if isinstance(b, torch.Tensor)):,} tokens of "
            f"hidden states twice, one block's input statistics) but {available / 2**30:.1f} "
            "GiB is available; use fewer samples or a shorter window"
        )
