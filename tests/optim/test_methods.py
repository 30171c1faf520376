"""The method registry: one source for the API's and the CLI's method names and defaults."""

import json

import pytest
import torch

import condensa
from condensa import ConfigError, schemes
from condensa.cli import main
from condensa.optim import (
    DC,
    GMP,
    LC,
    METHODS,
    CompressionResult,
    Distillation,
    build_method,
    register_method,
)
from tests.cli.conftest import write_config
from tests.conftest import make_mlp


class HalfDC:
    """A user's method: direct compression, evaluated, with one option."""

    def __init__(self, trainer, *, label="half", metric="accuracy"):
        self.trainer, self.label, self.metric = trainer, label, metric

    def compress(self, model, scheme):
        compressed = condensa.compress(model, scheme)
        metrics = self.trainer.evaluate(compressed)
        record = {"iteration": 0.0, **{f"val_{k}": v for k, v in metrics.items()}}
        return CompressionResult(compressed, [record], metrics[self.metric], 0)


@pytest.fixture
def registered():
    register_method("halfdc", HalfDC, {"label": "from-defaults"}, "a test method")
    yield
    METHODS.pop("halfdc")


def test_built_in_methods_and_defaults(blobs_trainer):
    """Defaults are the classes' own (one source); options override them; metric is passed."""
    assert list(METHODS)[:4] == ["gmp", "lc", "finetune", "dc"]
    direct, built = LC(blobs_trainer), build_method("lc", blobs_trainer, metric="accuracy")
    assert (direct.iterations, direct.steps, direct.finetune_steps) == (10, 160, 400)
    assert (built.iterations, built.steps, built.finetune_steps) == (10, 160, 400)
    assert GMP(blobs_trainer).steps == build_method("gmp", blobs_trainer, metric="loss").steps
    steps_given = build_method("lc", blobs_trainer, {"steps": 30}, metric="accuracy")
    assert steps_given.steps == 30 and steps_given.finetune_steps == 0  # no hidden budget
    lc = build_method("lc", blobs_trainer, {"budget": 100}, metric="loss")
    assert isinstance(lc, LC) and lc.iterations == 10 and lc.selector.metric == "loss"
    assert lc.finetune_steps == 20 and lc.steps == 8
    gmp = build_method("gmp", blobs_trainer, metric="accuracy")
    assert isinstance(gmp, GMP) and gmp.steps == 2000 and gmp.distill is None  # measured
    taught = build_method("gmp", blobs_trainer, {"distill": True}, metric="accuracy")
    assert taught.distill == Distillation()
    assert isinstance(build_method("dc", None, metric="accuracy"), DC)


def test_unknown_method_and_option_list_valid_ones(blobs_trainer):
    with pytest.raises(ConfigError, match="unknown method 'admm'; valid: gmp, lc, finetune, dc"):
        build_method("admm", blobs_trainer, metric="accuracy")
    with pytest.raises(ConfigError, match="unknown option.*stepz.*valid: steps"):
        build_method("gmp", blobs_trainer, {"stepz": 3}, metric="accuracy")


def test_register_refuses_duplicates_and_non_methods():
    with pytest.raises(ConfigError, match="'lc' is already registered"):
        register_method("lc", HalfDC)
    with pytest.raises(ConfigError, match="has no compress"):
        register_method("nothing", int)


@pytest.mark.slow
def test_registered_method_runs_through_the_api(registered, blobs_trainer):
    torch.manual_seed(0)
    model = make_mlp()
    outcome = condensa.search_compression(
        model,
        lambda s: schemes.Prune(s),
        trainer=blobs_trainer,
        objective=condensa.objectives.FileSize(),
        example_inputs=torch.randn(2, 16),
        method="halfdc",
        max_drop=1.0,
        budget=2,
        seed=0,
    )
    assert len(outcome.search.trials) == 2 and outcome.model is not None


@pytest.mark.slow
def test_registered_method_runs_through_the_cli(registered, tmp_path, capsys):
    config = write_config(tmp_path, method="halfdc", options='options = { label = "x" }')
    out = tmp_path / "o"
    code = main(["compress", str(config), "--sparsity", "0.5", "-o", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["config"]["method"]["name"] == "halfdc"
