"""The examples in examples/ do what their docstrings say."""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

import condensa
from condensa import masking

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_scheme_follows_its_rules():
    """SizeAwarePrune: first/last untouched, conv filters removed whole, larger layers sparser."""
    example = _load("custom_scheme")
    torch.manual_seed(0)
    model = condensa.zoo.DigitsCNN()
    small = condensa.compress(model, example.SizeAwarePrune())
    convs = [m for m in small.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in small.modules() if isinstance(m, nn.Linear)]
    assert torch.equal(convs[0].weight, model.features[0].weight)  # first layer
    assert torch.equal(linears[-1].weight, model.classifier[3].weight)  # last layer
    for conv in convs[1:]:
        per_filter = (conv.weight.flatten(1) != 0).sum(1)
        assert ((per_filter == 0) | (per_filter == conv.weight[0].numel())).all()
        assert int((per_filter != 0).sum()) % 4 == 0
    fc = linears[0].weight
    assert (fc != 0).any(dim=1).all()  # unstructured: no whole rows removed
    sparsity = {fqn: float((~m).float().mean()) for fqn, m in masking.masks(small).items()}
    assert sparsity["classifier.1.weight"] > sparsity["features.3.weight"]


def test_custom_scheme_example_main_runs(capsys):
    _load("custom_scheme").main()
    assert "Condensa model statistics" in capsys.readouterr().out


@pytest.mark.slow
def test_search_example_finds_a_feasible_smaller_model(tmp_path):
    """The search story: a feasible FilterPrune sparsity, fewer MACs, a saved file and a plot."""
    outcome = _load("search_digits").main(budget=4, out=tmp_path)
    assert outcome.search.best is not None
    assert outcome.search.best.accuracy >= outcome.baseline_accuracy - 0.01
    assert -outcome.search.best.objective <= outcome.baseline_objective.value
    assert (tmp_path / "digits.condensa").exists() and (tmp_path / "search.png").exists()
