"""int8_inference: thinned first, input untouched, outputs close to the float model; bad backends
and models without Linear layers are refused.
"""

import pytest
import torch
from torch import nn

import condensa
from condensa import schemes
from condensa.errors import ConfigError
from condensa.quantized import int8_inference, is_decoder_lm


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))


def test_int8_linear_layers_approximate_the_float_model():
    """int8 kernels replace every Linear; outputs stay within int8 error of the float model."""
    model = _mlp()
    x = torch.randn(16, 32)
    quantized = int8_inference(model, x)
    kinds = {type(m).__module__ for m in quantized.modules() if "Linear" in type(m).__name__}
    assert all("quantized" in k for k in kinds), kinds
    with torch.inference_mode():
        expected, got = model(x), quantized(x)
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()
    assert got.argmax(1).eq(expected.argmax(1)).float().mean() >= 0.9


def test_thinned_before_quantizing_and_input_untouched():
    model = _mlp()
    x = torch.randn(8, 32)
    small = condensa.compress(model, schemes.NeuronPrune(0.5))
    before = {k: v.clone() for k, v in small.state_dict().items()}
    quantized = int8_inference(small, x)
    assert quantized[0].weight().shape[0] == 32  # half the neurons removed
    assert all(torch.equal(before[k], v) for k, v in small.state_dict().items())


def test_bad_backend_and_models_without_linear():
    with pytest.raises(ConfigError, match="backend must be one of"):
        int8_inference(_mlp(), torch.randn(2, 32), backend="tensorrt")
    with pytest.raises(ConfigError, match="no nn.Linear"):
        int8_inference(nn.Sequential(nn.Conv2d(1, 2, 3)), torch.randn(1, 1, 5, 5))


def test_a_decoder_language_model_gets_per_token_activations_and_per_tensor_is_refused():
    """A *ForCausalLM runs the per-token kernel by default; per-tensor needs force=True."""
    pytest.importorskip("transformers")
    from condensa.kernels import TokenInt8Linear
    from tests.optim.test_oneshot import tiny_llama

    model = tiny_llama(layers=1)
    tokens = torch.randint(0, 64, (1, 8))
    with pytest.raises(ConfigError, match="activations='token'"):
        int8_inference(model, tokens, activations="tensor")
    with pytest.raises(ConfigError, match="activations must be one of"):
        int8_inference(model, tokens, activations="channel")
    with pytest.raises(ConfigError, match="keep= and calibration= apply to per-token"):
        int8_inference(_mlp(), torch.randn(2, 32), keep=["0"])
    runnable = int8_inference(model, tokens)
    kinds = {type(m) for n, m in runnable.named_modules() if n.endswith(("proj", "lm_head"))}
    assert kinds == {TokenInt8Linear}
    with torch.no_grad():
        want, got = model(tokens).logits, runnable(tokens).logits
    assert (got - want).norm() / want.norm() < 0.05
    smoothed = int8_inference(model, tokens, calibration=[tokens], keep=["lm_head"])
    assert type(smoothed.lm_head) is torch.nn.Linear
    with torch.no_grad():
        assert (smoothed(tokens).logits - want).norm() / want.norm() < 0.05
    assert is_decoder_lm(model) and not is_decoder_lm(torch.nn.Linear(2, 2))
