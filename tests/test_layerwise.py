"""Per-block sparsity: OWL's outlier ratios, the shaped family, block allocations, the search."""

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, schemes
from condensa.layerwise import (
    MAX_SPARSITY,
    block_allocation,
    block_outliers,
    owl_sparsities,
    search_allocation,
    shaped_sparsities,
)
from tests.optim.test_oneshot import batches, tiny_llama

OUTLIERS = [0.01, 0.05, 0.02, 0.08, 0.03, 0.01]


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.parametrize("shape", [(0.0, 0.0), (0.2, 0.0), (-0.2, 0.4), (0.1, 0.16)])
@pytest.mark.parametrize("sparsity", [0.3, 0.6, 0.95])
def test_every_shape_keeps_the_average_sparsity_within_bounds(shape, sparsity):
    values = shaped_sparsities(OUTLIERS, sparsity, *shape)
    assert _mean(values) == pytest.approx(sparsity, abs=1e-9)
    assert all(0 <= v <= MAX_SPARSITY for v in values)


def test_owl_prunes_blocks_with_more_outliers_less_over_a_range_of_two_lam():
    values = owl_sparsities(OUTLIERS, 0.5, lam=0.08)
    order = sorted(range(len(OUTLIERS)), key=lambda i: OUTLIERS[i])
    assert [values[i] for i in order] == sorted(values, reverse=True)
    assert max(values) - min(values) == pytest.approx(0.16)
    assert shaped_sparsities(OUTLIERS, 0.5, 0.0, 0.0) == pytest.approx([0.5] * 6)
    assert shaped_sparsities([0.1, 0.1], 0.5, 0.0, 0.3) == pytest.approx([0.5, 0.5])


def test_outlier_ratios_are_one_per_block_and_leave_the_model_alone():
    model = tiny_llama(layers=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ratios = block_outliers(model, batches(2), threshold=3.0)
    assert len(ratios) == 3 and all(0 < r < 1 for r in ratios)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_block_allocation_prunes_each_block_at_its_own_sparsity():
    model = tiny_llama(layers=3)
    wanted = [0.2, 0.5, 0.8]
    scheme = schemes.Prune(
        0.5, allocation=block_allocation(model, wanted), types=["Linear"], exclude=[r"^lm_head$"]
    )
    pruned = condensa.compress(model, scheme)
    for i, want in enumerate(wanted):
        block = pruned.model.layers[i]
        weights = [m.weight for m in block.modules() if isinstance(m, nn.Linear)]
        zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        assert zeros == pytest.approx(want, abs=0.01)


def test_the_search_starts_from_uniform_and_owl_and_returns_no_worse():
    seen = []

    def evaluate(sparsities):  # best: a steep depth slope, later blocks pruned more
        seen.append(sparsities)
        return sum((s - (0.5 + 0.3 * (i / 5 - 0.5))) ** 2 for i, s in enumerate(sparsities))

    found = search_allocation(evaluate, OUTLIERS, 0.5, budget=8, lam=0.08)
    assert len(seen) == 8 and seen[0] == pytest.approx([0.5] * 6)
    assert seen[1] == pytest.approx(owl_sparsities(OUTLIERS, 0.5, 0.08))
    assert found.best.value <= min(found.uniform.value, found.owl.value)
    assert found.best.value < 0.5 * found.uniform.value
    assert _mean(found.sparsities()) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: shaped_sparsities([0.1], 0.5, 0, 0), "at least 2 blocks"),
        (lambda: shaped_sparsities(OUTLIERS, 1.5, 0, 0), "sparsity"),
        (lambda: owl_sparsities(OUTLIERS, 0.5, lam=0.9), "lam must be"),
        (lambda: search_allocation(sum, OUTLIERS, 0.5, lam=0.3), "max_weight"),
        (lambda: search_allocation(sum, OUTLIERS, 0.5, max_slope=0), "max_slope"),
        (lambda: block_allocation(tiny_llama(layers=2), [0.5]), "1 sparsities given for 2"),
        (lambda: block_allocation(nn.Linear(2, 2), [0.5]), "no list of blocks"),
        (lambda: block_outliers(nn.Linear(2, 2), [torch.randn(1, 2)]), "no list of blocks"),
        (lambda: block_outliers(tiny_llama(), batches(1), threshold=0), "threshold"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
