"""Objectives registered from outside the package run by name through the API and the CLI."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

import pytest
import torch

import condensa
from condensa import ConfigError
from condensa.cli import main
from condensa.objectives import (
    Measurement,
    build_objective,
    objective_names,
    objective_options,
    register_objective,
    registry,
)
from tests.cli.conftest import write_config
from tests.conftest import make_mlp


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Registrations made by a test do not outlive it."""
    monkeypatch.setattr(registry, "_OBJECTIVES", dict(registry._OBJECTIVES))


def _register_kept_weights(name: str) -> type:
    @register_objective(name)
    @dataclass(frozen=True)
    class KeptWeights:
        """Non-zero weights of the model (fewer is better), times ``scale``."""

        scale: float = 1.0

        def __call__(self, model, example_inputs=None):
            kept = sum(int(torch.count_nonzero(p)) for p in model.parameters())
            return Measurement(self.scale * kept, "weights", higher_is_better=False)

    return KeptWeights


def test_builtin_objectives_are_registered_with_their_fields_as_options():
    """The registry is the list of names; dataclass fields are the options."""
    assert objective_names()[:4] == ("file-size", "macs", "throughput", "latency")
    assert objective_options("macs") == {"mode": "effective"}
    assert set(objective_options("throughput")) == {"batch_size", "threads", "warmup", "repeats"}
    assert build_objective("latency", {"repeats": 3}).repeats == 3


def test_a_registered_objective_runs_through_the_api():
    """search_compression takes the objective built by name; trials carry its unit."""
    _register_kept_weights("kept-weights")
    objective = build_objective("kept-weights", {"scale": 2.0})
    torch.manual_seed(0)
    x, y = torch.randn(64, 16), torch.arange(4).repeat(16)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    outcome = condensa.search_compression(
        make_mlp(), lambda s: condensa.schemes.Prune(s),
        trainer=condensa.optim.SupervisedTrainer(loader, loader), objective=objective,
        example_inputs=x[:1], method="dc", max_drop=1.0, budget=2, seed=0,
    )  # fmt: skip
    trials = outcome.search.trials
    assert [t.extra["objective_unit"] for t in trials] == ["weights", "weights"]
    assert all(t.extra["objective_value"] % 2 == 0 for t in trials)  # scale 2 applied


@pytest.mark.slow
def test_a_registered_objective_runs_through_the_cli_by_name(tmp_path):
    """`[objective] name = ...` with the objective's own option as a config key."""
    _register_kept_weights("kept-weights-cli")
    config = write_config(tmp_path, objective="kept-weights-cli")
    text = config.read_text().replace("batch_size = 16\nrepeats = 2\nwarmup = 1", "scale = 3.0")
    config.write_text(text)
    out = tmp_path / "out"
    assert main(["search", str(config), "--output", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {t["extra"]["objective_unit"] for t in summary["trials"]} == {"weights"}
    assert summary["config"]["objective"]["scale"] == 3.0


@pytest.mark.slow
def test_a_config_imports_the_module_that_registers_its_objective(tmp_path, monkeypatch):
    """`imports = [...]` loads an extension module before the config is checked."""
    (tmp_path / "my_objectives.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            from condensa.objectives import Measurement, register_objective

            @register_objective("layer-count")
            @dataclass(frozen=True)
            class LayerCount:
                def __call__(self, model, example_inputs=None):
                    return Measurement(float(len(list(model.modules()))), "modules")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_config(tmp_path, objective="layer-count")
    text = config.read_text().replace("batch_size = 16\nrepeats = 2\nwarmup = 1", "")
    config.write_text('imports = ["my_objectives"]\n' + text)
    out = tmp_path / "out"
    assert main(["search", str(config), "--output", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {t["extra"]["objective_unit"] for t in summary["trials"]} == {"modules"}


def test_a_config_import_that_fails_names_the_module(tmp_path, capsys):
    """A module that cannot be imported is a config error naming it; nothing is written."""
    config = write_config(tmp_path)
    config.write_text('imports = ["no_such_module_xyz"]\n' + config.read_text())
    out = tmp_path / "out"
    assert main(["search", str(config), "--output", str(out)]) == 2
    assert "cannot import 'no_such_module_xyz'" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_options_and_names_list_the_valid_ones():
    """Errors name the bad value and what is valid."""
    with pytest.raises(ConfigError, match="objective 'macs' has no option 'speed'; valid: mode"):
        build_objective("macs", {"speed": 1})
    with pytest.raises(ConfigError, match="objective 'energy'; valid: file-size, macs"):
        build_objective("energy")
    with pytest.raises(ConfigError, match="mode = 'fast' is not valid; valid: effective"):
        build_objective("macs", {"mode": "fast"})


def test_registration_refuses_bad_names_non_dataclasses_and_taken_names():
    """A name is registered once, for a callable dataclass."""
    with pytest.raises(ConfigError, match="lower-case letters"):
        register_objective("Bad Name")
    with pytest.raises(ConfigError, match="is not a dataclass"):
        register_objective("plain")(type("Plain", (), {"__call__": lambda self, m, x: 1.0}))
    with pytest.raises(ConfigError, match="defines no __call__"):
        register_objective("inert")(dataclass(frozen=True)(type("Inert", (), {})))
    with pytest.raises(ConfigError, match="'file-size' is taken by FileSize"):
        _register_kept_weights("file-size")
