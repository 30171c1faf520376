"""Sparsity allocation: global ranking prunes the exact count, deterministically, never empties a
layer; uniform and explicit allocations do what they say.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import condensa
from condensa import SelectionError, schemes
from condensa.functional import n_keep
from tests.conftest import TinyCNN, make_mlp


def _target_weights(model, types=(nn.Linear, nn.Conv2d)):
    return [m.weight for m in model.modules() if isinstance(m, types)]


@settings(max_examples=20, deadline=None)
@given(s=st.floats(0.0, 0.99), seed=st.integers(0, 1000))
def test_global_prune_exact_zero_count(s, seed):
    """Prune(s) over N target weights leaves exactly N - floor((1-s)N) zeros."""
    torch.manual_seed(seed)
    model = TinyCNN()
    weights = _target_weights(condensa.compress(model, schemes.Prune(s)))
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == total - n_keep(total, s)


def test_global_prune_with_ties_is_exact_and_deterministic():
    """All-equal magnitudes: the count is still exact and repeated runs agree."""
    model = make_mlp()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    a = condensa.compress(model, schemes.Prune(0.6))
    b = condensa.compress(model, schemes.Prune(0.6))
    weights = _target_weights(a, nn.Linear)
    total = sum(w.numel() for w in weights)
    assert sum(int((w == 0).sum()) for w in weights) == total - n_keep(total, 0.6)
    assert all(
        torch.equal(x, y) for x, y in zip(weights, _target_weights(b, nn.Linear), strict=True)
    )


def test_global_ranking_gives_layers_different_sparsities(mlp):
    with torch.no_grad():
        mlp[0].weight.mul_(10)  # the first layer matters more
    small = condensa.compress(mlp, schemes.Prune(0.5))
    first = float((small[0].weight == 0).float().mean())
    second = float((small[2].weight == 0).float().mean())
    assert first < 0.5 < second


def test_global_never_empties_a_layer(mlp):
    with torch.no_grad():
        mlp[4].weight.mul_(1e-6)
    small = condensa.compress(mlp, schemes.Prune(0.9))
    assert int((small[4].weight != 0).sum()) >= 1


def test_uniform_allocation_prunes_each_layer_equally(mlp):
    small = condensa.compress(mlp, schemes.Prune(0.75, allocation="uniform"))
    for layer in (small[0], small[2], small[4]):
        w = layer.weight
        assert int((w == 0).sum()) == w.numel() - n_keep(w.numel(), 0.75)


def test_explicit_allocation_by_name_and_regex(mlp):
    small = condensa.compress(mlp, schemes.Prune(0.1, allocation={"0": 0.5, r"[24]": 0.25}))
    assert float((small[0].weight == 0).float().mean()) == 0.5
    assert float((small[2].weight == 0).float().mean()) == 0.25
    assert float((small[4].weight == 0).float().mean()) == 0.25


def test_explicit_allocation_key_matching_nothing(mlp):
    with pytest.raises(SelectionError, match=r"allocation key\(s\) \['fc9'\] match no target"):
        condensa.compress(mlp, schemes.Prune(0.1, allocation={"fc9": 0.5}))


def test_unknown_allocation_lists_valid():
    with pytest.raises(
        condensa.ConfigError, match="unknown allocation 'local'; valid: global, uniform"
    ):
        schemes.Prune(0.5, allocation="local")


@pytest.mark.parametrize("s", [0.3, 0.5, 0.72, 0.9])
def test_filter_prune_align_keeps_multiple_of_8(s):
    """FilterPrune(s, align=8) keeps a multiple of 8 filters in every layer."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 24, 3)
    )
    small = condensa.compress(model, schemes.FilterPrune(s, align=8))
    for conv in (small[0], small[2], small[4]):
        kept = int((conv.weight.flatten(1) != 0).any(dim=1).sum())
        assert kept % 8 == 0 and kept >= 8
        assert torch.equal(conv.bias != 0, (conv.weight.flatten(1) != 0).any(dim=1))


def test_filter_prune_global_prunes_close_to_sparsity():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3))
    small = condensa.compress(model, schemes.FilterPrune(0.5))
    weights = [small[0].weight, small[2].weight]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    # at least the sparsity, by less than one filter (the largest is 32 * 3 * 3 weights)
    assert 0.5 * total <= zeros < 0.5 * total + 32 * 3 * 3
