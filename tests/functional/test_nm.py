"""N:M masks keep exactly N of every M consecutive inputs; invalid N, M or shapes are refused by
name.
"""

import pytest
import torch

from condensa import ConfigError, ShapeError
from condensa.functional import nm_mask

CASES = [
    (shape, n, m)
    for shape in [(6, 16), (4, 8, 3, 3), (5, 12, 2)]
    for n, m in [(2, 4), (1, 4), (4, 8), (3, 4)]
    if shape[1] % m == 0
]


@pytest.mark.parametrize("shape, n, m", CASES)
def test_exactly_n_kept_in_every_group_of_m(shape, n, m):
    """Every group of m consecutive input weights keeps exactly n (the largest)."""
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    mask = nm_mask(w, n, m)
    groups = mask.movedim(1, -1).reshape(-1, m)
    assert (groups.sum(dim=1) == n).all()
    magnitudes = w.abs().movedim(1, -1).reshape(-1, m)
    kept_min = torch.where(groups, magnitudes, torch.inf).amin(dim=1)
    dropped_max = torch.where(groups, -torch.inf, magnitudes).amax(dim=1)
    assert (kept_min >= dropped_max).all()


def test_groups_run_along_input_dimension():
    w = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.0, 9.0, 8.0, 0.5]])
    assert nm_mask(w, 2, 4).int().tolist() == [[1, 0, 1, 0, 0, 1, 1, 0]]


@pytest.mark.parametrize("n, m", [(4, 4), (5, 4), (0, 4), (2.0, 4)])
def test_invalid_nm_is_refused(n, m):
    with pytest.raises(ConfigError):
        nm_mask(torch.randn(4, 8), n, m)


def test_m_must_divide_input_dimension():
    with pytest.raises(ShapeError, match="m=4 does not divide the input dimension 6"):
        nm_mask(torch.randn(4, 6), 2, 4)
