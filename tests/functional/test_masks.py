"""Top-k and magnitude masks keep exactly the requested count, the largest entries, and break ties
deterministically (lower index first).
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from condensa.functional import achieved_sparsity, magnitude_mask, n_keep, topk_mask


def test_topk_ties_keep_lower_index():
    """Equal scores: the entry with the lower flat index is kept first."""
    scores = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.5])
    assert topk_mask(scores, 2).tolist() == [False, True, True, False, False]


def test_topk_all_equal_is_deterministic():
    mask = topk_mask(torch.zeros(3, 4), 5)
    assert mask.reshape(-1).tolist() == [True] * 5 + [False] * 7


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), s=st.floats(0.0, 0.999), seed=st.integers(0, 10_000))
def test_magnitude_mask_keeps_exact_count(n, s, seed):
    """Exactly n_keep(n, s) entries are kept, even with many ties."""
    w = torch.randint(-3, 4, (n,), generator=torch.Generator().manual_seed(seed)).float()
    mask = magnitude_mask(w, s)
    assert int(mask.sum()) == n_keep(n, s)


def test_magnitude_mask_keeps_largest():
    w = torch.tensor([[0.1, -5.0], [3.0, -0.2]])
    assert magnitude_mask(w, 0.5).tolist() == [[False, True], [True, False]]


def test_achieved_sparsity_counts_zeros():
    assert achieved_sparsity(torch.tensor([0.0, 1.0, 0.0, -0.0])) == 0.75
    assert achieved_sparsity(torch.empty(0)) == 0.0


@pytest.mark.slow
def test_kth_smallest_matches_kthvalue_on_large_tensors_with_ties():
    """The sampled bracket must never change the answer, ties and extremes included."""
    from condensa.functional.masks import kth_smallest

    g = torch.Generator().manual_seed(0)
    smooth = torch.randn(1 << 21, generator=g)
    tied = torch.randint(0, 4, (1 << 21,), generator=g).float()
    for values in (smooth, tied):
        for k in (1, 7, values.numel() // 3, values.numel() - 1, values.numel()):
            assert float(kth_smallest(values, k)) == float(torch.kthvalue(values, k).values)


def test_topk_mask_on_a_large_tensor_keeps_exactly_k_lowest_index_first():
    values = torch.zeros(1 << 21)
    values[:10] = 1.0
    mask = topk_mask(values, 15)
    assert int(mask.sum()) == 15 and bool(mask[:15].all())
