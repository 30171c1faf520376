"""Real int8 inference for Linear layers on CPU (dynamic quantization).

Fake quantization (``Quantize("int8")``) trains and measures accuracy with int8 weights
but still runs float kernels. :func:`int8_inference` converts the deployable model's
``nn.Linear`` layers to int8 kernels: weights stored in int8 (per output channel),
activations quantized on the fly per batch.

Activations (``activations=``): ``"tensor"``, one scale per tensor (per batch), the
default for every model but decoders; ``"token"``, one scale per token
(:mod:`condensa.kernels`), the default for decoder language models, which per-tensor
scales break (SmolLM2-135M: perplexity 16.8 -> 3.2 million on 512-token windows; 18.9
per token, 1.77x the fp32 decode speed).

Backends (per-tensor activations):
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
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from condensa.errors import CondensaError, ConfigError
from condensa.inputs import Inputs
from condensa.kernels import token_int8
from condensa.smoothing import smooth

BACKENDS = ("torch", "torchao")
ACTIVATIONS = ("auto", "tensor", "token")


def is_decoder_lm(model: nn.Module) -> bool:
    """Whether ``model`` is a decoder language model (a Hugging Face ``*ForCausalLM``)."""
    config = getattr(model, "config", None)
    names = [type(model).__name__, *(getattr(config, "architectures", None) or [])]
    return any(str(n).endswith("ForCausalLM") for n in names) or bool(
        getattr(config, "is_decoder", False)
    )


def int8_inference(
    model: nn.Module,
    example_inputs: Inputs,
    *,
    backend: str = "torch",
    activations: str = "auto",
    keep: Sequence[str] = (),
    calibration: Sequence[Any] | None = None,
    alpha: float = 0.5,
    force: bool = False,
) -> nn.Module:
    """The deployable model (thinned, masks baked) with int8 Linear layers, for CPU inference.

    Args:
        model: a compressed or plain model (not modified).
        example_inputs: one batch, for thinning.
        backend: ``"torch"`` or ``"torchao"`` (see the module docstring).
        activations: ``"token"``, ``"tensor"`` or ``"auto"`` (token for decoder language
            models, tensor otherwise).
        keep: with per-token activations, names or regexes of Linear layers left float.
        calibration: with per-token activations, token-id batches to smooth the model
            first (:func:`condensa.smoothing.smooth`; SmolLM2-135M: perplexity 18.9 ->
            17.8 with every Linear in int8, fp32 16.8).
        alpha: the smoothing's migration strength.
        force: run a decoder language model with per-tensor activations anyway.

    Returns:
        A new module in eval mode; outputs approximate the float model's (int8 error).

    Raises:
        ConfigError: unknown backend or activations, a model without Linear layers,
            ``keep`` with per-tensor activations, or per-tensor activations on a decoder
            language model without ``force`` (it breaks them, see above).
        CondensaError: the torchao backend is requested but not installed.

    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if activations not in ACTIVATIONS:
        raise ConfigError(f"activations must be one of {ACTIVATIONS}, got {activations!r}")
    decoder = is_decoder_lm(model)
    if activations == "auto":
        activations = "token" if decoder else "tensor"
    if activations == "tensor" and decoder and not force:
        raise ConfigError(
            "int8 with one activation scale per tensor breaks decoder language models such "
            f"as this {type(model).__name__} (SmolLM2-135M: perplexity 16.8 -> 3.2 million); "
            "use activations='token' (the default for them), or pass force=True"
        )
    if activations == "token" and backend != "torch":
        raise ConfigError("per-token activations run on the 'torch' backend only")
    if (keep or calibration is not None) and activations != "token":
        raise ConfigError("keep= and calibration= apply to per-token activations only")
    from condensa.thinning import deployable

    if activations == "token":
        runnable = deployable(model, example_inputs)
        if calibration is not None:
            runnable = smooth(runnable, calibration, alpha=alpha)
        return token_int8(runnable, keep)
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
