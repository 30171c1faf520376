"""The per-token int8 Linear kernel: rows independent of each other, close to float, keep=."""

import pytest
import torch
from torch import nn

from condensa import ConfigError
from condensa.kernels import TokenInt8Linear, token_int8


def _linear(seed=0, bias=True):
    torch.manual_seed(seed)
    return nn.Linear(48, 40, bias=bias)


@pytest.mark.parametrize("bias", [True, False])
def test_each_token_is_quantized_on_its_own_scale(bias):
    """A row 1000x larger than the others does not change the others' outputs (per-tensor would)."""
    layer = TokenInt8Linear(_linear(bias=bias))
    x = torch.randn(5, 48)
    alone = layer(x)
    loud = torch.cat([x, 1000 * torch.randn(1, 48)])
    with torch.no_grad():
        assert torch.allclose(layer(loud)[:5], alone, atol=1e-5)
        one = layer(x[:1])  # a decoded token: the kernel's own range is the token's
        assert (one - alone[:1]).norm() < 0.03 * alone[:1].norm()


@pytest.mark.parametrize("shape", [(2, 7, 48), (1, 1, 48)])
def test_outputs_are_close_to_float_and_shapes_are_kept(shape):
    linear = _linear()
    layer = TokenInt8Linear(linear)
    x = torch.randn(*shape)
    with torch.no_grad():
        want, got = linear(x), layer(x)
    assert got.shape == (*shape[:-1], 40)
    assert (got - want).norm() / want.norm() < 0.02


def test_a_weight_already_on_an_int8_grid_is_kept_exactly():
    """Round-to-nearest int8 weights (per-row scale max/127) lose nothing more."""
    linear = _linear(bias=False)
    with torch.no_grad():
        scale = linear.weight.abs().amax(1, keepdim=True) / 127
        linear.weight.copy_(torch.round(linear.weight / scale) * scale)
    x = torch.round(torch.randn(2, 48) * 20)  # integer rows whose max |x| is 63
    x = x.clamp(-63, 63)
    x[:, 0] = 63.0
    with torch.no_grad():
        assert torch.allclose(TokenInt8Linear(linear)(x), linear(x), rtol=1e-4, atol=1e-3)


def test_keep_leaves_named_layers_float_and_the_model_untouched():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = token_int8(model, keep=["2"])
    assert isinstance(converted[0], TokenInt8Linear) and type(converted[2]) is nn.Linear
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model[0]) is nn.Linear


@pytest.mark.parametrize(
    ("keep", "message"), [(["("], "not a valid regex"), (["body"], "matches no Linear")]
)
def test_bad_keep_entries_are_refused(keep, message):
    model = nn.Sequential(nn.Linear(8, 4))
    with pytest.raises(ConfigError, match=message):
        token_int8(model, keep=keep)


def test_a_model_without_linear_layers_is_refused():
    with pytest.raises(ConfigError, match="no nn.Linear"):
        token_int8(nn.Sequential(nn.Conv2d(1, 2, 3)))
