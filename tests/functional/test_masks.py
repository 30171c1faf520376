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
