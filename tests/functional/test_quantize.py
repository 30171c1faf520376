"""Quantization math: int8 within half a step, symmetric per channel, zero channels exact; casts
equal torch's; fake quantization passes gradients straight through.
"""

import pytest
import torch

from condensa import ConfigError
from condensa.functional import (
    cast_roundtrip,
    check_dtype,
    dequantize_int8,
    fake_cast,
    fake_quantize_int8,
    quantize_int8,
)


@pytest.fixture
def w():
    return torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(0)) * 3


def test_int8_roundtrip_within_half_step(w):
    """|dq(q(w)) - w| <= scale / 2 for every entry (round-to-nearest, no clipping)."""
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (6, 1, 1)
    err = (dequantize_int8(q, scale, w.dtype) - w).abs()
    assert (err <= scale / 2 + 1e-6).all()


def test_int8_is_symmetric_per_output_channel(w):
    q, scale = quantize_int8(w)
    assert int(q.abs().amax()) == 127
    assert torch.allclose(scale.squeeze(), w.abs().amax(dim=(1, 2)) / 127)


def test_int8_all_zero_channel_stays_zero():
    w = torch.zeros(2, 4)
    w[1] = torch.tensor([1.0, -2.0, 0.5, 0.0])
    q, scale = quantize_int8(w)
    assert (q[0] == 0).all() and float(scale[0]) == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cast_roundtrip_equals_torch_cast(w, dtype):
    assert torch.equal(cast_roundtrip(w, dtype), w.to(dtype).float())


def test_fake_quantization_has_straight_through_gradient(w):
    """Forward is quantized, backward is the identity."""
    for fake in (lambda t: fake_quantize_int8(t), lambda t: fake_cast(t, torch.float16)):
        x = w.clone().requires_grad_(True)
        y = fake(x)
        y.sum().backward()
        assert torch.equal(x.grad, torch.ones_like(x))
    x = w.clone().requires_grad_(True)
    q, scale = quantize_int8(w)
    assert torch.equal(fake_quantize_int8(x).detach(), dequantize_int8(q, scale, w.dtype))


def test_unknown_dtype_lists_valid_ones():
    with pytest.raises(
        ConfigError, match="unknown dtype 'int4'; valid dtypes: float16, bfloat16, int8"
    ):
        check_dtype("int4")
    assert check_dtype(torch.float16) == "float16"
