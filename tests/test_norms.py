"""LayerNorms that follow a channel mask normalize over the kept channels only.

Invariants: a masked LayerNorm (plain or permuting, as ConvNeXt's ``LayerNorm2d``)
computes what a LayerNorm of the kept channels computes and writes zeros elsewhere;
the behaviour survives parametrization, baking, deep copies and in-place mask updates;
``release`` gives the plain class back; the state dict keeps its keys.
"""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from condensa import masking
from condensa.formats import Mask
from condensa.norms import follow_mask, follows_mask, kept, kept_layer_norm, release
from tests.architectures import LayerNorm2d

KEEP = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1], dtype=torch.bool)


def _norm(cls):
    torch.manual_seed(0)
    norm = cls(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm


def _masked(cls):
    norm = _norm(cls)
    for name in ("weight", "bias"):
        masking.register(norm, name, Mask(KEEP))
    return norm


def _small(norm, cls):
    small = cls(int(KEEP.sum()), eps=norm.eps)
    with torch.no_grad():
        small.weight.copy_(norm.weight[KEEP])
        small.bias.copy_(norm.bias[KEEP])
    return small


@pytest.mark.parametrize(("cls", "axis"), [(nn.LayerNorm, -1), (LayerNorm2d, 1)])
def test_masked_norm_equals_the_norm_of_the_kept_channels(cls, axis):
    norm = _masked(cls)
    x = torch.randn(2, 5, 3, 8) if axis == -1 else torch.randn(2, 8, 3, 3)
    y = norm(x)
    expected = _small(norm, cls)(x.index_select(axis, KEEP.nonzero().flatten()))
    got = y.index_select(axis, KEEP.nonzero().flatten())
    assert torch.allclose(got, expected, atol=1e-6)
    assert y.index_select(axis, (~KEEP).nonzero().flatten()).abs().max() == 0
    assert set(norm.state_dict()) == {
        "parametrizations.weight.original",
        "parametrizations.weight.0.mask",
        "parametrizations.bias.original",
        "parametrizations.bias.0.mask",
    }


def test_masks_on_other_modules_change_nothing():
    """Only a mask on a LayerNorm's scale makes it follow: Linear and BatchNorm stay as they are."""
    linear, bn = nn.Linear(8, 8), nn.BatchNorm1d(8)
    masking.register(linear, "weight", Mask(torch.ones(8, 8, dtype=torch.bool)))
    masking.register(bn, "weight", Mask(KEEP))
    assert not follows_mask(linear) and not follows_mask(bn)


def test_baked_copied_and_updated_masks_are_followed():
    norm = _masked(nn.LayerNorm)
    x = torch.randn(4, 8)
    y = norm(x)
    model = nn.Sequential(norm)
    baked = masking.bake(model)[0]
    assert not parametrize.is_parametrized(baked) and follows_mask(baked)
    assert torch.equal(baked(x), y)
    assert torch.equal(copy.deepcopy(baked)(x), y)
    # a mask updated in place (as gradual pruning does) is read live
    norm.parametrizations.weight[0].mask[0] = False
    assert kept(norm).tolist()[0] is False
    assert norm(x)[:, 0].abs().max() == 0
    assert not torch.allclose(norm(x)[:, 2], y[:, 2])  # statistics over 5 channels now


def test_release_gives_the_plain_class_back_and_refuses_live_masks():
    norm = _masked(nn.LayerNorm)
    with pytest.raises(ValueError, match="baked"):
        release(norm)
    baked = masking.bake(nn.Sequential(norm))[0]
    release(baked)
    assert type(baked) is nn.LayerNorm and "kept_channels" not in dict(baked.named_buffers())
    release(baked)  # a plain norm: nothing to do


def test_follow_mask_before_or_after_parametrization_keeps_both_classes_removable():
    for first in ("follow", "parametrize"):
        norm = _norm(nn.LayerNorm)
        if first == "follow":
            follow_mask(norm)
        parametrize.register_parametrization(norm, "weight", Mask(KEEP))
        follow_mask(norm)
        assert follows_mask(norm)
        parametrize.remove_parametrizations(norm, "weight", leave_parametrized=True)
        assert follows_mask(norm) and not parametrize.is_parametrized(norm)


def test_kept_layer_norm_matches_torch_when_everything_is_kept():
    x = torch.randn(3, 8)
    w, b = torch.rand(8), torch.rand(8)
    everything = torch.ones(8, dtype=torch.bool)
    expected = nn.functional.layer_norm(x, (8,), w, b, 1e-5)
    assert torch.allclose(kept_layer_norm(x, everything, w, b, 1e-5), expected, atol=1e-6)
