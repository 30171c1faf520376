"""Block and channel scores match their definitions for every criterion; block shapes that cannot
tile a weight are refused by name.
"""

import pytest
import torch

from condensa import ConfigError, ShapeError
from condensa.functional import CRITERIA, block_scores, channel_scores, check_block, expand_blocks


@pytest.fixture
def w():
    # four 2x2 blocks with known entries
    return torch.tensor(
        [[1.0, -2.0, 0.0, 0.0], [3.0, -4.0, 0.0, 1.0], [-1.0, 1.0, 2.0, 2.0], [1.0, -1.0, 2.0, 2.0]]
    )


@pytest.mark.parametrize(
    "criteria, expected",
    [
        ("l1", [[10.0, 1.0], [4.0, 8.0]]),
        ("l2", [[30.0**0.5, 1.0], [2.0, 4.0]]),
        ("max", [[4.0, 1.0], [1.0, 2.0]]),
        ("min", [[1.0, 0.0], [1.0, 2.0]]),
        ("mean", [[2.5, 0.25], [1.0, 2.0]]),
        ("sum", [[2.0, 1.0], [0.0, 8.0]]),
        ("scaled_l2", [[30.0**0.5 / 2, 0.5], [1.0, 2.0]]),
    ],
)
def test_block_scores_match_definition(w, criteria, expected):
    """Each criterion reduces each 2x2 block as documented."""
    assert torch.allclose(block_scores(w, (2, 2), criteria), torch.tensor(expected))


def test_every_criterion_is_tested():
    assert set(CRITERIA) == {"l1", "l2", "max", "min", "mean", "sum", "scaled_l2"}


def test_unknown_criteria_lists_valid_ones(w):
    with pytest.raises(ConfigError, match="unknown criteria 'l3'.*l1, l2, max, min, mean, sum"):
        block_scores(w, (2, 2), "l3")


def test_expand_blocks_inverts_grid():
    mask = torch.tensor([[True, False], [False, True]])
    full = expand_blocks(mask, (2, 3))
    assert full.shape == (4, 6)
    assert full[:2, :3].all() and not full[:2, 3:].any() and full[2:, 3:].all()


def test_conv_block_of_two_sizes_takes_kernel_whole():
    assert check_block((2, 2), (8, 4, 3, 3)) == (2, 2, 3, 3)


def test_block_that_does_not_tile_names_shape():
    with pytest.raises(
        ShapeError, match=r"block \(3, 2\) does not tile fc.weight of shape \(4, 4\)"
    ):
        check_block((3, 2), (4, 4), name="fc.weight")


@pytest.mark.parametrize("bad", [(0, 2), (2, -1), "22", (2.0, 2)])
def test_block_must_hold_positive_integers(bad):
    with pytest.raises(ConfigError, match="block must be"):
        check_block(bad, (4, 4))


def test_channel_scores_per_output_channel():
    w = torch.zeros(3, 2, 2, 2)
    w[0] = 1.0
    w[2] = 2.0
    assert channel_scores(w, "l1").tolist() == [8.0, 0.0, 16.0]
