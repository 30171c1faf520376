"""Stored formats are one registry: a format added outside the package (examples/int4_storage.py)
is held by masking, saved, checked and loaded by io, and counted by stats, through the API
and the CLI, with no edit to Condensa."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import condensa
from condensa import CondensaError, ConfigError, formats, masking, schemes
from condensa.cli import main
from condensa.formats import FakeCast, FakeQuantInt8, Mask, StoredFormat, register_format
from condensa.formats import base as format_base
from condensa.operators import registry as operator_registry
from tests.cli.conftest import write_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INT4 = {"*": [{"type": "int4"}]}


@pytest.fixture
def int4(monkeypatch):
    """The example module, imported by name; its registrations do not outlive the test."""
    monkeypatch.setattr(format_base, "_FORMATS", dict(format_base._FORMATS))
    operators = dict(operator_registry.OPERATORS)  # the dict is shared by name: restore it
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("int4_storage", None)
    yield importlib.import_module("int4_storage")
    sys.modules.pop("int4_storage", None)
    operator_registry.OPERATORS.clear()
    operator_registry.OPERATORS.update(operators)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
    )  # fmt: skip


def test_builtin_formats_are_registered_by_kind_and_buffer():
    """mask, cast and int8 are found by their file kind and their state-dict buffer."""
    assert [f.kind for f in formats.formats()][:3] == ["mask", "cast", "int8"]
    assert formats.format_keyed("code") is FakeCast
    assert formats.format_named("int8") is FakeQuantInt8
    assert issubclass(Mask, StoredFormat)


def test_the_last_storage_format_decides_on_save_and_on_load(tmp_path):
    """int8 then float16: float16 storage is written and read back (one rule both ways)."""
    model, x = _mlp(), torch.randn(5, 32)
    small = condensa.compress(
        model, schemes.Compose([schemes.Quantize("int8"), schemes.Quantize("float16")])
    )
    path = condensa.save(small, tmp_path / "m.condensa")
    metadata, _ = condensa.io.read(path)
    assert json.loads(metadata["tensors"])["0.weight"]["storage"] == "float16"
    assert masking.storage(small[0], "weight").dtype == "float16"
    torch.testing.assert_close(condensa.load(path, _mlp())(x), small(x), rtol=0, atol=0)


def test_registration_refuses_non_formats_missing_names_and_clashes(monkeypatch):
    """A format is registered once, with a kind and a key no other format uses."""
    monkeypatch.setattr(format_base, "_FORMATS", dict(format_base._FORMATS))
    with pytest.raises(ConfigError, match="is not a StoredFormat subclass"):
        register_format(torch.nn.Identity)
    with pytest.raises(ConfigError, match="must set the class attributes 'kind' and 'key'"):
        register_format(type("Nameless", (StoredFormat,), {}))
    clash = type("Clash", (StoredFormat,), {"kind": "int8", "key": "other"})
    with pytest.raises(ConfigError, match="clash with FakeQuantInt8"):
        register_format(clash)
    with pytest.raises(ConfigError, match="operator name 'int8' is taken by Affine"):
        operator_registry.register_operator("int8", condensa.operators.Affine)


def test_an_outside_format_compresses_saves_and_loads_through_the_api(int4, tmp_path):
    """int4 weights: the model holds them, stats count half a byte each, the file holds
    packed nibbles (smaller than int8's), and load gives the same outputs."""
    model, x = _mlp(), torch.randn(5, 32)
    small = condensa.compress(model, schemes.Rules(INT4))
    w = small[0].weight.detach()
    levels = w / w.abs().amax(1, keepdim=True) * 7
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-5)  # 15 levels per row
    layer = condensa.stats(small).layers[0]
    assert layer.dtype == "int4"
    nonzero = int(torch.count_nonzero(w)), int(torch.count_nonzero(small[0].bias))
    assert layer.compressed_bytes == round(nonzero[0] / 2) + 64 * 4 + nonzero[1] * 4
    int8 = condensa.compress(model, schemes.Quantize("int8"))
    sizes = {
        name: condensa.save(m, tmp_path / f"{name}.condensa").stat().st_size
        for name, m in (("int4", small), ("int8", int8))
    }
    assert sizes["int4"] < 0.75 * sizes["int8"]
    loaded = condensa.load(tmp_path / "int4.condensa", _mlp())
    assert isinstance(loaded[0].parametrizations.weight[0], int4.FakeQuantInt4)
    torch.testing.assert_close(loaded(x), small(x), rtol=0, atol=1e-6)
    restored = masking.restore(_mlp(), small.state_dict())  # state dicts too
    torch.testing.assert_close(restored(x), small(x), rtol=0, atol=0)


def test_an_outside_format_stacks_with_pruning(int4, tmp_path):
    """Prune then int4: positions and packed values of the kept entries round-trip."""
    model, x = _mlp(), torch.randn(5, 32)
    small = condensa.compress(model, schemes.Compose([schemes.Prune(0.7), schemes.Rules(INT4)]))
    kept = masking.masks(small)
    density = sum(int(m.sum()) for m in kept.values()) / sum(m.numel() for m in kept.values())
    assert density < 0.31
    assert not small[0].weight[~kept["0.weight"]].any()
    condensa.save(small, tmp_path / "m.condensa")
    loaded = condensa.load(tmp_path / "m.condensa", _mlp())
    torch.testing.assert_close(loaded(x), small(x), rtol=0, atol=1e-6)
    assert torch.equal(loaded[0].weight == 0, small[0].weight == 0)


def test_quantize_names_a_registered_value_operator(int4):
    """Quantize("int4") builds the registered operator; unknown dtypes list it as valid."""
    small = condensa.compress(_mlp(), schemes.Quantize("int4"))
    assert isinstance(small[2].parametrizations.weight[0], int4.FakeQuantInt4)
    assert schemes.from_dict(schemes.Quantize("int4").to_dict()).to_dict()["dtype"] == "int4"
    with pytest.raises(ConfigError, match="valid dtypes: float16, bfloat16, int8, int4"):
        schemes.Quantize("int3")


def test_a_file_with_a_truncated_outside_format_is_refused(int4, tmp_path):
    """The format's own check runs on untrusted files: missing bytes are named."""
    from safetensors.numpy import save_file

    path = condensa.save(condensa.compress(_mlp(), schemes.Rules(INT4)), tmp_path / "m.condensa")
    metadata, arrays = condensa.io.read(path)
    arrays["0.weight::nibbles"] = arrays["0.weight::nibbles"][:-1]
    save_file(arrays, str(tmp_path / "bad.condensa"), metadata=metadata)
    with pytest.raises(CondensaError, match="'0.weight' holds 1023 int4 bytes, 1024 expected"):
        condensa.load(tmp_path / "bad.condensa", _mlp())


def test_a_file_of_an_unregistered_format_names_the_valid_ones(int4, tmp_path, monkeypatch):
    """Without the extension imported, its files are refused with the registered kinds."""
    path = condensa.save(condensa.compress(_mlp(), schemes.Rules(INT4)), tmp_path / "m.condensa")
    monkeypatch.delitem(format_base._FORMATS, "int4")
    with pytest.raises(CondensaError, match=r"unknown type \(valid: mask, cast to float16"):
        condensa.load(path, _mlp())


@pytest.mark.slow
def test_an_outside_format_runs_through_the_cli(int4, tmp_path):
    """`imports` loads the format; a composed scheme uses it; the chosen model's file holds
    int4 tensors and loads back."""
    config = write_config(tmp_path)
    text = config.read_text().replace(
        'type = "FilterPrune"\nsparsity = 0.5',
        'type = "Compose"\nschemes = [{ type = "FilterPrune", sparsity = 0.5 }, '
        '{ "*" = [{ type = "int4" }] }]',
    )
    config.write_text('imports = ["int4_storage"]\n' + text)
    out = tmp_path / "out"
    assert main(["search", str(config), "--output", str(out), "-q"]) == 0
    metadata, arrays = condensa.io.read(out / "best" / "model.condensa")
    stored = {e["storage"] for e in json.loads(metadata["tensors"]).values()}
    assert "int4" in stored
    assert any(key.endswith("::nibbles") and a.dtype == np.uint8 for key, a in arrays.items())
    loaded = condensa.load(out / "best" / "model.condensa")
    assert any(isinstance(m, int4.FakeQuantInt4) for m in loaded.modules())


@pytest.mark.parametrize("dtype", ["int4", "int8"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_group_quantized_files_round_trip_exactly(tmp_path, dtype, symmetric):
    """Group int4/int8 (zero points or not, after pruning): save/load gives equal outputs."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(200, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    scheme = schemes.Compose(
        [schemes.Prune(0.5), schemes.Quantize(dtype, group_size=64, symmetric=symmetric)]
    )
    small = condensa.compress(model, scheme)
    path = condensa.save(small, tmp_path / "g.condensa")
    fresh = torch.nn.Sequential(torch.nn.Linear(200, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    loaded = condensa.load(path, model=fresh)
    x = torch.randn(4, 200)
    assert torch.equal(loaded(x), small(x))
    assert (small[0].weight == 0).float().mean() >= 0.5, "pruned entries stay zero"
    bits = 4 if dtype == "int4" else 8
    assert (
        condensa.stats(small).compressed_bytes < condensa.stats(model).dense_bytes * bits / 32 * 1.3
    )


@pytest.mark.parametrize(
    "part, value, phrase",
    [
        ("scale", np.float32("nan"), "not a finite positive"),
        ("scale", np.float32("inf"), "not a finite positive"),
        ("zero", np.int16(99), "zero point outside"),
    ],
)
def test_group_files_with_bad_scales_or_zeros_are_refused(tmp_path, part, value, phrase):
    """A NaN/inf scale or an out-of-range zero point in a file is malformed, not NaN outputs."""
    from safetensors.numpy import save_file

    from condensa.io import read

    model = torch.nn.Sequential(torch.nn.Linear(64, 8))
    path = condensa.save(
        condensa.compress(model, schemes.Quantize("int4", group_size=32)), tmp_path / "q.condensa"
    )
    metadata, arrays = read(path)
    key = f"0.weight::{part}"
    arrays[key] = arrays[key].copy()
    arrays[key][0] = value
    save_file(arrays, str(tmp_path / "bad.condensa"), metadata=metadata)
    with pytest.raises(condensa.CondensaError, match=phrase):
        condensa.load(tmp_path / "bad.condensa", model=model)


def test_int8_files_with_infinite_scales_are_refused(tmp_path):
    """Per-channel int8 with an inf scale: refused on load (it would give inf/NaN outputs)."""
    from safetensors.numpy import save_file

    from condensa.io import read

    model = torch.nn.Sequential(torch.nn.Linear(16, 8))
    path = condensa.save(
        condensa.compress(model, schemes.Quantize("int8")), tmp_path / "q.condensa"
    )
    metadata, arrays = read(path)
    arrays["0.weight::scale"] = arrays["0.weight::scale"].copy()
    arrays["0.weight::scale"].reshape(-1)[0] = np.inf
    save_file(arrays, str(tmp_path / "bad.condensa"), metadata=metadata)
    with pytest.raises(condensa.CondensaError, match="not finite"):
        condensa.load(tmp_path / "bad.condensa", model=model)
