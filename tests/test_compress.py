"""compress never modifies its input; bad input, NaN weights or a failing plan leave the model
unchanged; compressing again stacks.
"""

import math

import pytest
import torch
from torch import nn

import condensa
from condensa import (
    ConfigError,
    NonFiniteError,
    SelectionError,
    ShapeError,
    UnsupportedModuleError,
    masking,
    schemes,
)
from tests.conftest import same_state, snapshot


def test_input_model_is_never_modified(cnn, images):
    before = snapshot(cnn)
    cnn.eval()
    out = cnn(images)
    small = condensa.compress(
        cnn, schemes.Compose([schemes.Prune(0.9), schemes.Quantize("float16")])
    )
    assert same_state(cnn, before)
    assert torch.equal(cnn(images), out)
    assert not masking.masks(cnn)
    assert type(cnn.fc1) is nn.Linear
    assert small is not cnn


def test_compressing_a_compressed_model_stacks(cnn):
    """Sparsity is absolute: re-compressing at 0.5 changes nothing, at 0.8 prunes more."""
    once = condensa.compress(cnn, schemes.Prune(0.5))
    same = condensa.compress(once, schemes.Prune(0.5))
    assert torch.equal(same.fc1.weight, once.fc1.weight)
    twice = condensa.compress(once, schemes.Prune(0.8))
    zeros_once = int((once.fc1.weight == 0).sum())
    zeros_twice = int((twice.fc1.weight == 0).sum())
    assert zeros_twice > zeros_once
    mask_once = masking.masks(once)["fc1.weight"]
    assert (twice.fc1.weight[~mask_once] == 0).all()


BAD_INPUT = [
    (lambda: schemes.Prune(1.0), ConfigError, r"sparsity must lie in \[0, 1\)"),
    (lambda: schemes.Prune("half"), ConfigError, "'half'"),
    (
        lambda: schemes.BlockPrune(0.5, block=(3, 3)),
        ShapeError,
        "does not tile weight 'conv1.weight'",
    ),
    (lambda: schemes.NMPrune(4, 4), ConfigError, "0 < n < m"),
    (lambda: schemes.NMPrune(2, 4), ShapeError, "m=4 does not divide the input dimension 1"),
    (lambda: schemes.Prune(0.5, include="decoder"), SelectionError, "decoder"),
    (lambda: schemes.Prune(0.5, types=[nn.GRU]), UnsupportedModuleError, "GRU"),
    (
        lambda: schemes.FilterPrune(0.5, align=64),
        ConfigError,
        "align=64 is larger than 'conv1.weight'",
    ),
    (lambda: schemes.Quantize("int4"), ConfigError, "valid dtypes: float16, bfloat16, int8"),
    (lambda: schemes.FilterPrune(0.5, criteria="median"), ConfigError, "valid criteria"),
]


@pytest.mark.parametrize("make, error, message", BAD_INPUT)
def test_bad_input_clear_error_and_model_unchanged(cnn, make, error, message):
    """Each bad input raises a named error and leaves the model exactly as it was."""
    before = snapshot(cnn)
    with pytest.raises(error, match=message):
        condensa.compress(cnn, make())
    assert same_state(cnn, before)


def test_nan_weights_refused_and_model_unchanged(cnn):
    with torch.no_grad():
        cnn.fc1.weight[0, 0] = math.nan
    before = snapshot(cnn)
    with pytest.raises(NonFiniteError, match="fc1.weight holds 1 NaN/inf"):
        condensa.compress(cnn, schemes.Prune(0.5))
    assert torch.equal(cnn.conv1.weight, before["conv1.weight"])


def test_apply_plan_failure_leaves_model_unchanged(cnn):
    """In-place apply: a failing check after planning changes nothing."""
    plan = schemes.Prune(0.5).plan(cnn)
    before = snapshot(cnn)
    with torch.no_grad():
        cnn.fc2.weight[0, 0] = math.inf
    before = snapshot(cnn)
    with pytest.raises(NonFiniteError):
        masking.apply_plan(cnn, plan)
    assert same_state(cnn, before)
    assert not masking.masks(cnn)


def test_compress_rejects_non_scheme(cnn):
    with pytest.raises(ConfigError, match="expected a condensa Scheme"):
        condensa.compress(cnn, {"type": "Prune"})


def test_compressing_a_copy_never_changes_the_original_class(cnn, images):
    """Adding a bias mask to a copy must not change the original's parametrized class."""
    once = condensa.compress(cnn, schemes.Prune(0.5)).eval()
    out = once(images)
    condensa.compress(once, schemes.FilterPrune(0.5))  # masks conv biases in the copy
    assert torch.equal(once(images), out)
    assert not torch.nn.utils.parametrize.is_parametrized(once.conv1, "bias")
    baked = masking.bake(once)
    assert torch.equal(once(images), out)
    assert torch.equal(baked.eval()(images), out)


def test_unchanged_tells_an_identity_scheme_and_modifies_nothing(cnn):
    """Pruning at 0 keeps every weight; any pruning or fp16 rounding does not."""
    from condensa.compress import unchanged

    before = snapshot(cnn)
    assert unchanged(cnn, condensa.compress(cnn, schemes.Prune(0.0)))
    assert unchanged(cnn, condensa.compress(cnn, schemes.FilterPrune(0.0)))
    assert not unchanged(cnn, condensa.compress(cnn, schemes.Prune(0.1)))
    fp16 = schemes.Compose([schemes.Prune(0.0), schemes.Quantize("float16")])
    assert not unchanged(cnn, condensa.compress(cnn, fp16))
    assert same_state(cnn, before)
