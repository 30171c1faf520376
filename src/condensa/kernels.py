"""Int8 Linear kernels with one activation scale per token, for decoder language models.

Dynamic int8 with one activation scale per *tensor* lets a few large activations set
the scale of every token in a batch: SmolLM2-135M's perplexity goes from 16.8 to
3,245,712 when every Linear runs that way on 512-token windows. :class:`TokenInt8Linear`
quantizes each token (row) with its own scale to integers in [-63, 63], then runs
PyTorch's int8 CPU kernel (``quantized::linear_dynamic``, weights int8 per output
channel, activations in the kernel's reduced 7-bit range that cannot overflow on AVX2)
on those integer rows and rescales each output row. Two constant input columns (-64
and 63, against zero weights) pin the kernel's own per-tensor range to [-64, 63], so
its scale is exactly 1 and each token's result does not depend on the other tokens in
the batch. SmolLM2-135M: perplexity 18.9 against 16.8 with every Linear and the output
head converted (7 or 8 activation bits measured alike), faster decode on 2 threads
(``benchmarks/llm.py``).

:func:`token_int8` converts a model's Linear layers (a new model); ``keep`` leaves the
named ones in float, which is how a search spends its accuracy budget on the layers
that gain the most speed for the least error.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.inputs import Compare, relative_errors

_EPS = 1e-8
_LEVEL = 63
"""Largest activation integer: 7 bits, the kernel's reduced range (no AVX2 overflow)."""


def _quantized_engine() -> None:
    """Select a CPU int8 engine this build has (fbgemm, else x86, else qnnpack)."""
    supported = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine in ("fbgemm", "x86", "qnnpack"):
        return
    for engine in ("fbgemm", "x86", "qnnpack"):
        if engine in supported:
            torch.backends.quantized.engine = engine
            return
    raise ConfigError(f"this PyTorch build has no CPU int8 engine (supported: {supported})")


class TokenInt8Linear(nn.Module):
    """``nn.Linear`` with int8 weights (per output row) and int8 activations per token.

    Args:
        linear: the float layer (read, not modified). Its weight is quantized
            symmetrically with scale ``max|row| / 127``: a weight already on such a grid
            (round-to-nearest or GPTQ int8 whose row keeps its largest value) is kept
            exactly.

    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        _quantized_engine()
        weight = linear.weight.detach().float().cpu()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        scale = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
        zeros = torch.zeros(self.out_features, dtype=torch.long)
        weight = torch.cat([weight, torch.zeros(self.out_features, 2)], dim=1)  # pin columns
        bias = None if linear.bias is None else linear.bias.detach().float().cpu().clone()
        self.register_buffer("bias", bias)  # added after the rows are scaled back
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's quantized-tensor deprecation notice
            qweight = torch.quantize_per_channel(weight, scale, zeros, 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(qweight, None)
        self.register_buffer("_pins", torch.tensor([[-_LEVEL - 1.0, float(_LEVEL)]]), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rows scaled to integers in [-63, 63], the int8 kernel, rows scaled back.

        A single row (a decoded token) goes to the kernel as it is: its per-tensor range
        is then the token's own (asymmetric, at least as fine as the symmetric one), and
        five fewer operations per layer matter when a token's work is this small.
        """
        rows = x.reshape(-1, self.in_features).float()
        pin = cast(torch.Tensor, self._pins)
        bias = cast("torch.Tensor | None", self.bias)
        if rows.shape[0] == 1:  # zero columns: inside any range, so the result is the row's
            out = torch.ops.quantized.linear_dynamic(
                torch.cat([rows, pin.new_zeros(1, 2)], dim=1), self._packed, True
            )
            out = out if bias is None else out + bias
            return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(_EPS) / _LEVEL
        pins = pin.expand(rows.shape[0], 2)
        integers = torch.cat([torch.round(rows / scale), pins], dim=1)
        out = torch.ops.quantized.linear_dynamic(integers, self._packed, True)
        out = out * scale if bias is None else torch.addcmul(bias, out, scale)
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        """Sizes, as nn.Linear prints them."""
        return f"in_features={self.in_features}, out_features={self.out_features}"


def token_int8(model: nn.Module, keep: Sequence[str] = ()) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers are :class:`TokenInt8Linear`.

    Args:
        model: a float model on the CPU (not modified). An output head tied to the
            input embedding becomes its own int8 copy; the embedding stays float.
        keep: module names or regexes (full match) of Linear layers to leave in float.

    Raises:
        ConfigError: a ``keep`` entry that is not a valid regex or matches no Linear
            layer, or a model with no Linear layer to convert.

    """
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear layer to run in int8")
    patterns = []
    for entry in keep:
        try:
            patterns.append(re.compile(entry))
        except (re.error, TypeError) as exc:
            raise ConfigError(f"keep entry {entry!r} is not a valid regex: {exc}") from None
        if not any(patterns[-1].fullmatch(n) for n in linears):
            raise ConfigError(
                f"keep entry {entry!r} matches no Linear layer of {type(model).__name__} "
                f"(for example: {', '.join(linears[:3])})"
            )
    converted = copy.deepcopy(model).cpu().eval()
    for name in linears:
        if any(p.fullmatch(name) for p in patterns):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = converted.get_submodule(parent_name)
        setattr(parent, child, TokenInt8Linear(getattr(parent, child)))
    return converted


def kernel_errors(model: nn.Module, batches: Sequence[Any]) -> dict[str, float]:
    """Each Linear layer's relative output error under the kernel, on ``batches``.

    ``||kernel(x) - linear(x)||² / ||linear(x)||²`` summed over the inputs each layer
    sees when the float model runs the batches: the order in which a search keeps
    layers in float (largest error first). ``model`` is not modified.

    Raises:
        ConfigError: a model without Linear layers.

    """
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear layer to run in int8")

    def compare(kernel: TokenInt8Linear) -> Compare:
        return lambda x, output: (kernel(x) - output, output)

    return relative_errors(
        model, batches, {n: compare(TokenInt8Linear(m)) for n, m in linears.items()}
    )
