"""The int8-layer search on a tiny Llama: kernel errors, the fraction searched, the answer model."""

import re

import pytest
import torch
from torch import nn

from condensa import ConfigError
from condensa.int8_layers import int8_count, kept_float, search_int8_layers
from condensa.kernels import TokenInt8Linear, kernel_errors
from condensa.objectives import Decode, FileSize
from condensa.optim.causal_lm import CausalLMTrainer
from tests.optim.test_oneshot import TEXT, CharTokenizer, batches, tiny_llama

FAST = Decode(prompt=8, new_tokens=2, warmup=0, repeats=1)


def trainer():
    return CausalLMTrainer(
        CharTokenizer(), TEXT[:40], TEXT[40:], window=16, eval_tokens=64, last_words=0
    )


def test_kernel_errors_name_every_linear_and_leave_the_model_alone():
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    errors = kernel_errors(model, batches(2))
    linears = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert set(errors) == linears and all(0 < e < 0.05 for e in errors.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_louder_layer_has_the_larger_error():
    """Scaling one input channel up makes that layer's per-token rounding coarser."""
    model = tiny_llama()
    errors = kernel_errors(model, batches(2))
    with torch.no_grad():
        model.model.layers[0].input_layernorm.weight[3] *= 200
    louder = kernel_errors(model, batches(2))
    q = "model.layers.0.self_attn.q_proj"
    assert louder[q] > 2 * errors[q]


def test_fractions_count_layers_from_the_smallest_error():
    order = ("a", "b.c", "d")
    assert [int8_count(order, f) for f in (0.0, 0.4, 0.5, 1.0)] == [0, 1, 2, 3]
    assert kept_float(order, 0.4) == [re.escape("b.c"), "d"] and kept_float(order, 1.0) == []


def test_the_search_answers_a_fraction_and_its_model_runs_that_many_layers_in_int8():
    model = tiny_llama()
    found = search_int8_layers(
        model, trainer(), batches(1)[0], objective=FAST, max_relative_drop=0.5, budget=3, seed=0
    )
    assert len(found.search.trials) == 3 and found.fraction is not None
    for trial in found.search.trials:
        assert trial.extra["int8_layers"] == int8_count(found.order, trial.sparsity)
    answer = found.model()
    converted = sum(isinstance(m, TokenInt8Linear) for m in answer.modules())
    assert converted == int8_count(found.order, found.fraction)
    assert found.reference_metric == pytest.approx(trainer().evaluate(model)["perplexity"])
    with torch.no_grad():  # smoothed: the float layers and the head still give the same logits
        want, got = model(batches(1)[0]).logits, found.runnable(batches(1)[0]).logits
    assert (got - want).norm() < 1e-4 * want.norm()


def test_an_objective_without_relative_and_an_unknown_metric_are_refused():
    model = tiny_llama()
    with pytest.raises(ConfigError, match="no relative method"):
        search_int8_layers(model, trainer(), batches(1)[0], objective=FileSize())
    with pytest.raises(ConfigError, match="not the metric 'accuracy'"):
        search_int8_layers(model, trainer(), batches(1)[0], objective=FAST, metric="accuracy")
