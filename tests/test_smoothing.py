"""SmoothQuant smoothing of a tiny Llama: float outputs kept, channels flattened, errors."""

import pytest
import torch
from torch import nn

from condensa import ConfigError
from condensa.kernels import kernel_errors
from condensa.smoothing import smooth
from tests.optim.test_oneshot import batches, tiny_llama


def _loud(model, channel=5, factor=300.0):
    """An outlier channel in every attention norm's output, as trained decoders have."""
    with torch.no_grad():
        for layer in model.model.layers:
            layer.input_layernorm.weight[channel] *= factor
    return model


def test_smoothing_keeps_the_float_outputs_and_leaves_the_model_alone():
    model = _loud(tiny_llama())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    smoothed = smooth(model, batches(2))
    x = batches(1, seed=7)[0]
    with torch.no_grad():
        want, got = model(x).logits, smoothed(x).logits
    assert (got - want).norm() < 1e-4 * want.norm()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert smoothed.lm_head.weight is not smoothed.model.embed_tokens.weight
    assert torch.equal(smoothed.model.embed_tokens.weight, model.model.embed_tokens.weight)


def test_smoothing_cuts_the_kernel_error_of_layers_fed_an_outlier_channel():
    model = _loud(tiny_llama())
    before = kernel_errors(model, batches(2))
    after = kernel_errors(smooth(model, batches(2)), batches(2))
    q = "model.layers.1.self_attn.q_proj"
    assert after[q] < 0.3 * before[q]


def test_a_norm_that_does_not_scale_with_its_weight_is_refused():
    """A Gemma-style norm (x * (1 + w)) would be changed by smoothing: refused, not broken."""

    class OnePlus(nn.Module):
        def __init__(self, norm):
            super().__init__()
            self.weight = nn.Parameter(norm.weight.detach() - 1)
            self.eps = norm.variance_epsilon

        def forward(self, x):
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
            return x * (1 + self.weight)

    model = tiny_llama()
    for layer in model.model.layers:
        layer.input_layernorm = OnePlus(layer.input_layernorm)
    with pytest.raises(ConfigError, match="do not scale linearly"):
        smooth(model, batches(1))


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        (nn.Sequential(nn.Linear(4, 4)), {}, "not a decoder family"),
        (None, {"alpha": 1.0}, "alpha must be in"),
        (None, {"batches": []}, "at least one calibration batch"),
    ],
)
def test_bad_input_is_named(model, kwargs, message):
    args = {"batches": batches(1), **kwargs}
    with pytest.raises(ConfigError, match=message):
        smooth(model if model is not None else tiny_llama(), **args)
