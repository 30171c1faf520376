"""Fewer bits for the least sensitive Linears: byte counts as saved, error order, refusals."""

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, schemes
from condensa.low_bits import fewest_to_save, saving, stored_bytes, weight_errors


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 192), nn.ReLU(),
                         nn.Linear(192, 10)).eval()  # fmt: skip


def _int8(include_int4=()):
    int8 = schemes.Quantize("int8", types=["Linear"], exclude=list(include_int4))
    if not include_int4:
        return int8
    int4 = schemes.Quantize("int4", group_size=128, types=["Linear"], include=list(include_int4))
    return schemes.Compose([int8, int4])


def test_the_saving_is_what_the_saved_file_loses(tmp_path):
    """stored_bytes follows condensa.save: int8 rows vs int4 groups of one layer differ by it."""
    model = _model()
    all8 = condensa.save(condensa.compress(model, _int8()), tmp_path / "a.condensa")
    one4 = condensa.save(condensa.compress(model, _int8([r"^0$"])), tmp_path / "b.condensa")
    lost = all8.stat().st_size - one4.stat().st_size
    assert lost == pytest.approx(saving(model[0]), abs=600)  # metadata: a few hundred chars
    assert stored_bytes(model[0]) == 256 * 256 + 4 * 256


def test_a_weight_on_the_int4_grid_has_no_error_and_the_model_is_unchanged():
    model = _model()
    levels = torch.randint(0, 16, (256, 256), generator=torch.Generator().manual_seed(1))
    levels[:, ::128] = 0  # every group spans 0..15: its own grid, exactly
    levels[:, 1::128] = 15
    with torch.no_grad():
        model[0].weight.copy_((levels.float() - 7) * 0.01)
    before = [p.clone() for p in model.parameters()]
    errors = weight_errors(model, [torch.randn(8, 256)])
    assert errors["0"] < 1e-12 < errors["2"]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_least_sensitive_layers_are_taken_first_until_enough_is_saved():
    model = _model()
    errors = {"0": 0.3, "2": 0.1, "4": 0.2}
    assert fewest_to_save(model, errors, 0) == []
    assert fewest_to_save(model, errors, 1) == ["2"]
    assert fewest_to_save(model, errors, saving(model[2]) + 1) == ["2", "4"]
    need = saving(model[2]) + saving(model[4]) + 1
    assert fewest_to_save(model, errors, need) == ["2", "4", "0"]


def test_more_than_every_layer_can_save_is_refused():
    model = _model()
    total = sum(saving(m) for m in model if isinstance(m, nn.Linear) and saving(m) > 0)
    with pytest.raises(ConfigError, match="less than the"):
        fewest_to_save(model, {"0": 0.1, "2": 0.2, "4": 0.3}, total + 1)


def test_bad_names_and_dtypes_are_refused():
    model = _model()
    with pytest.raises(ConfigError, match="not Linear layers"):
        weight_errors(model, [torch.randn(2, 256)], names=["1"])
    with pytest.raises(ConfigError, match="int3"):
        weight_errors(model, [torch.randn(2, 256)], dtype="int3")
