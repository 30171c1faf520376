"""Kept counts are the floored complement of the sparsity (at least the sparsity is removed);
alignment rounds down but never to zero; invalid sparsities and non-finite tensors are named.
"""

import math
import re

import pytest
import torch

from condensa import ConfigError, NonFiniteError
from condensa.functional import align_keep, check_align, check_finite, check_sparsity, n_keep


@pytest.mark.parametrize(
    "n, s, kept",
    [(10, 0.0, 10), (10, 0.25, 7), (10, 0.99, 0), (7, 0.5, 3), (0, 0.5, 0), (24, 0.3, 16)],
)
def test_n_keep_is_floored_complement(n, s, kept):
    """n_keep(n, s) == floor((1 - s) * n), the one definition: at least s * n removed."""
    assert n_keep(n, s) == kept == math.floor((1 - s) * n)
    assert n - kept >= s * n


@pytest.mark.parametrize(
    "n, s, kept", [(10, 0.9, 1), (10, 0.7, 3), (100, 0.3, 70), (1000, 0.1, 900)]
)
def test_n_keep_absorbs_float_rounding(n, s, kept):
    """(1 - 0.9) * 10 is 0.9999999999999998 in floats: the count is still 1, not 0."""
    assert n_keep(n, s) == kept


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan, "0.5", None, True])
def test_invalid_sparsity_message_names_value(bad):
    """Sparsity outside [0, 1) or not a number is refused, naming the value."""
    with pytest.raises(ConfigError, match=re.escape(repr(bad))):
        check_sparsity(bad)


def test_sparsity_errors_are_also_value_errors():
    with pytest.raises(ValueError):
        check_sparsity(2.0)


def test_align_rounds_down_never_to_zero():
    """Kept count becomes a multiple of align, at least align."""
    assert align_keep(13, 8, 32) == 8
    assert align_keep(16, 8, 32) == 16
    assert align_keep(3, 8, 32) == 8
    assert align_keep(0, 8, 32) == 8
    assert align_keep(13, None, 32) == 13


def test_align_larger_than_layer_is_refused():
    with pytest.raises(ConfigError, match="align=16 is larger than 'fc'"):
        align_keep(4, 16, 10, what="'fc'")


@pytest.mark.parametrize("bad", [0, -8, 2.5, True])
def test_check_align_rejects_non_positive_integers(bad):
    with pytest.raises(ConfigError, match="align"):
        check_align(bad)


def test_check_finite_names_tensor_and_count():
    w = torch.ones(4)
    w[1] = math.nan
    w[3] = math.inf
    with pytest.raises(NonFiniteError, match="fc.weight holds 2 NaN/inf"):
        check_finite(w, name="fc.weight")
