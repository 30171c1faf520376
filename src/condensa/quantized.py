"""Real int8 inference for Linear layers on CPU (dynamic quantization).

Fake quantization (``Quantize("int8")``) trains and measures accuracy with int8 weights
but still runs float kernels. :func:`int8_inference` converts the deployable model's
``nn.Linear`` layers to int8 kernels: weights stored in int8 (per output channel),
activations quantized on the fly per batch.

Backends:
    ``"torch"``: ``torch.ao.quantization.quantize_dynamic`` (fbgemm/x86 kernels, part of
    PyTorch; deprecated upstream in favour of torchao but still the fast CPU path);
    ``"torchao"``: ``torchao.quantization.Int8DynamicActivationInt8WeightConfig`` (the
    ``int8`` extra). Measured in ``benchmarks/int8_linear.py`` (2 CPU threads, batch 64):
    the torch backend runs a 3 x 2048 MLP 2.1x faster than float32 (LeNet-300-100, whose
    layers are tiny, 1.04x); torchao's eager CPU path is 10-50x slower than float32.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from condensa.errors import CondensaError, ConfigError
from condensa.inputs import Inputs

BACKENDS = ("torch", "torchao")


def is_decoder_lm(model: nn.Module) -> bool:
    """Whether ``model`` is a decoder language model (a Hugging Face ``*ForCausalLM``)."""
    config = getattr(model, "config", None)
    names = [type(model).__name__, *(getattr(config, "architectures", None) or [])]
    return any(str(n).endswith("ForCausalLM") for n in names) or bool(
        getattr(config, "is_decoder", False)
    )


def int8_inference(
    model: nn.Module, example_inputs: Inputs, *, backend: str = "torch", force: bool = False
) -> nn.Module:
    """The deployable model (thinned, masks baked) with int8 Linear layers, for CPU inference.

    Args:
        model: a compressed or plain model (not modified).
        example_inputs: one batch, for thinning.
        backend: ``"torch"`` or ``"torchao"`` (see the module docstring).
        force: run a decoder language model this way anyway (see Raises).

    Returns:
        A new module in eval mode; outputs approximate the float model's (int8 error).

    Raises:
        ConfigError: unknown backend, a model without Linear layers, or a decoder
            language model without ``force``: dynamic int8 with one activation scale per
            tensor breaks decoders (SmolLM2-135M: perplexity 12.6 -> 58.7, measured),
            whose activations have outlier channels; quantize their weights only
            (``method="gptq"`` with ``Quantize("int8" or "int4", group_size=128)``).
        CondensaError: the torchao backend is requested but not installed.

    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if is_decoder_lm(model) and not force:
        raise ConfigError(
            f"int8_inference quantizes activations with one scale per tensor, which breaks "
            f"decoder language models such as this {type(model).__name__} (SmolLM2-135M: "
            "perplexity 12.6 -> 58.7); quantize the weights only instead (method 'gptq' "
            "with Quantize('int4', group_size=128)), or pass force=True to run it anyway"
        )
    from condensa.thinning import deployable

    runnable = copy.deepcopy(deployable(model, example_inputs)).eval().cpu()
    if not any(isinstance(m, nn.Linear) for m in runnable.modules()):
        raise ConfigError(f"{type(model).__name__} has no nn.Linear layer to run in int8")
    if backend == "torch":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notice
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            return quantize_dynamic(
                runnable, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
            )
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        raise CondensaError(
            "the torchao backend needs the extra: pip install 'condensa[int8]'"
        ) from None
    quantize_(runnable, Int8DynamicActivationInt8WeightConfig())
    return runnable
