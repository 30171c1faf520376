"""Operators: projection is idempotent, never modifies its input, stays within the format's error;
chains decompress right to left; specs round-trip.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from condensa import ConfigError, ShapeError
from condensa.operators import (
    NM,
    Affine,
    Block,
    Cast,
    Chain,
    ChainedTensor,
    Channels,
    Magnitude,
    PrunedTensor,
    from_dict,
)

OPERATORS = [
    Magnitude(0.7),
    Block(0.5, block=(2, 2), criteria="l1"),
    Block(0.5, block=(2, 4), criteria="scaled_l2"),
    Channels(0.5),
    Channels(0.4, align=2, criteria="max"),
    NM(2, 4),
    NM(1, 8),
    Cast("float16"),
    Cast("bfloat16"),
    Affine(),
    Affine(axis=1),
    Chain((Magnitude(0.8), Cast("float16"))),
    Chain((Channels(0.5), Affine())),
    Chain((NM(2, 4), Cast("bfloat16"))),
]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.sampled_from([4, 8, 16]), scale=st.floats(1e-3, 1e3))
@pytest.mark.parametrize("op", OPERATORS, ids=repr)
def test_project_is_idempotent(op, seed, rows, scale):
    """project(project(w)) == project(w) for every operator."""
    w = torch.randn(rows, 16, generator=torch.Generator().manual_seed(seed)) * scale
    once = op.project(w)
    assert once.dtype == w.dtype and once.shape == w.shape
    assert torch.equal(op.project(once), once)


def test_compress_never_modifies_input():
    w = torch.randn(8, 8)
    before = w.clone()
    for op in OPERATORS:
        op.compress(w)
    assert torch.equal(w, before)


def test_int8_projection_within_half_step():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(3))
    c = Affine().compress(w)
    assert ((Affine().project(w) - w).abs() <= c.scale / 2 + 1e-6).all()


def test_fp16_roundtrip_equals_half_float():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(4))
    assert torch.equal(Cast("float16").project(w), w.half().float())
    assert Cast("float16").compress(w).values.dtype == torch.float16


def test_channels_mask_whole_rows_and_bias():
    w = torch.tensor([[3.0, 3.0], [0.1, 0.2], [2.0, 2.0], [0.0, 0.3]])
    c = Channels(0.5).compress(w)
    assert isinstance(c, PrunedTensor)
    assert c.bias_mask.tolist() == [True, False, True, False]
    assert c.mask.tolist() == [[True, True], [False, False], [True, True], [False, False]]


def test_channels_align_keeps_multiple():
    w = torch.randn(32, 4)
    kept = int(Channels(0.55, align=8).compress(w).bias_mask.sum())
    assert kept == 8  # round(0.45 * 32) = 14 -> 8


def test_block_conv_weight_prunes_whole_kernels():
    w = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    mask = Block(0.5, block=(2, 2)).compress(w).mask
    assert mask.shape == w.shape
    per_block = mask.reshape(4, 2, 2, 2, 3, 3).permute(0, 2, 1, 3, 4, 5).reshape(8, -1)
    assert ((per_block.sum(1) == 0) | (per_block.sum(1) == 36)).all()
    assert int(mask.sum()) == w.numel() // 2


def test_block_that_does_not_tile_names_weight():
    with pytest.raises(
        ShapeError, match=r"block \(3, 3\) does not tile weight 'fc.weight' of shape \(4, 6\)"
    ):
        Block(0.5, block=(3, 3)).check(torch.randn(4, 6), name="fc.weight")


def test_chain_decompresses_right_to_left():
    """Chain(prune, cast): the float16 values of the pruned tensor, pruned entries zero."""
    w = torch.randn(6, 8, generator=torch.Generator().manual_seed(5))
    chain = Chain((Magnitude(0.5), Cast("float16")))
    c = chain.compress(w)
    assert isinstance(c, ChainedTensor) and len(c.parts) == 2
    assert torch.equal(chain.project(w), Magnitude(0.5).project(w).half().float())


@pytest.mark.parametrize("op", OPERATORS, ids=repr)
def test_operator_dict_round_trip(op):
    assert from_dict(op.to_dict()) == op


def test_unknown_operator_lists_valid_names():
    with pytest.raises(
        ConfigError, match="unknown operator type 'prunez'; valid types: .*block.*magnitude"
    ):
        from_dict({"type": "prunez"})


def test_unknown_operator_option_is_config_error():
    with pytest.raises(ConfigError, match="invalid options for operator 'magnitude'"):
        from_dict({"type": "magnitude", "blocks": 3})


@pytest.mark.parametrize(
    "make",
    [
        lambda: Magnitude(1.0),
        lambda: Block(0.5, criteria="median"),
        lambda: Channels(0.5, align=0),
        lambda: NM(4, 4),
        lambda: Cast("int4"),
        lambda: Cast("int8"),
        lambda: Chain(()),
    ],
)
def test_invalid_configuration_is_refused_at_construction(make):
    with pytest.raises(ConfigError):
        make()


def test_align_larger_than_layer_named():
    with pytest.raises(ConfigError, match="align=16 is larger than 'fc.weight'"):
        Channels(0.5, align=16).check(torch.randn(8, 4), name="fc.weight")
