"""search_compression: the returned model is feasible, each trial's model is evaluated once,
deterministic evaluators never repeat a point, speed is a ratio to the baseline.
"""

import pytest
import torch

import condensa
from condensa import ConfigError, schemes
from condensa.objectives import Macs
from condensa.optim import SupervisedTrainer
from tests.conftest import make_mlp


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=g) * 3
    labels = torch.arange(4).repeat(32)
    x = centers[labels] + torch.randn(len(labels), 16, generator=g)
    loader = [(x[i : i + 32], labels[i : i + 32]) for i in range(0, len(labels), 32)]
    trainer = SupervisedTrainer(loader, loader, lr=1e-2)
    torch.manual_seed(0)
    model = make_mlp()
    trainer.train(model, 60)
    return model, trainer, x[:1]


@pytest.mark.slow
def test_search_compression_returns_a_feasible_model(setup):
    """One call: sparsity searched, each trial compressed and measured, best model kept."""
    model, trainer, example = setup
    outcome = condensa.search_compression(
        model,
        lambda s: schemes.NeuronPrune(s),
        trainer=trainer,
        objective=Macs(),
        example_inputs=example,
        method="dc",
        max_drop=0.05,
        budget=5,
        seed=0,
        bounds=(0.0, 0.9),
    )
    assert outcome.search.best is not None and outcome.model is not None
    best = outcome.search.best
    assert best.accuracy >= outcome.baseline_accuracy - 0.05
    assert trainer.evaluate(outcome.model)["accuracy"] == pytest.approx(best.accuracy)
    assert -best.objective == Macs()(outcome.model, example).value  # objective = -MACs
    assert len(outcome.search.trials) <= 5


def test_scheme_spec_with_sparsity_placeholder(setup):
    model, trainer, example = setup
    spec = {
        "type": "Compose",
        "schemes": [{"type": "Prune", "sparsity": 0.0}, {"type": "Quantize", "dtype": "float16"}],
    }
    outcome = condensa.search_compression(
        model,
        spec,
        trainer=trainer,
        objective=lambda m, x: condensa.stats(m).compression_ratio,
        example_inputs=example,
        method="dc",
        max_drop=0.05,
        budget=3,
        seed=0,
    )
    assert all(t.extra.get("objective_value", 0) >= 1.0 for t in outcome.search.trials)


def test_unknown_method(setup):
    model, trainer, example = setup
    with pytest.raises(ConfigError, match="unknown method 'admm'"):
        condensa.search_compression(
            model,
            lambda s: schemes.Prune(s),
            trainer=trainer,
            objective=Macs(),
            example_inputs=example,
            method="admm",
            max_drop=0.01,
        )


def test_example_inputs_is_needed(setup):
    """search_compression without example_inputs= is refused; the former name is gone."""
    model, trainer, example = setup
    common = {"trainer": trainer, "objective": Macs(), "method": "dc", "max_drop": 1.0}
    with pytest.raises(ConfigError, match="needs example_inputs="):
        condensa.search_compression(model, schemes.Prune, budget=1, **common)
    with pytest.raises(TypeError, match="example_input"):
        condensa.search_compression(model, schemes.Prune, example_input=example, **common)


@pytest.mark.parametrize("bounds", [("a", 0.5), (0.5, 0.2), (0.0, 1.0), (float("nan"), 0.5)])
def test_bad_bounds_are_refused_before_any_work(setup, bounds):
    """search_compression(bounds=...) is checked first: a ConfigError naming the value."""
    model, trainer, example = setup
    with pytest.raises(ConfigError, match="bounds"):
        condensa.search_compression(
            model,
            schemes.Prune,
            trainer=trainer,
            objective=Macs(),
            example_inputs=example,
            method="dc",
            max_drop=1.0,
            bounds=bounds,
        )


def test_a_model_whose_forward_raises_is_named_not_raw(setup):
    """The uncompressed model failing on the data: a UserCodeError saying where, type kept."""
    from condensa.errors import UserCodeError

    model, trainer, example = setup

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")

    with pytest.raises(UserCodeError, match="evaluating the uncompressed model failed") as err:
        condensa.search_compression(
            Broken(),
            schemes.Prune,
            trainer=trainer,
            objective=Macs(),
            example_inputs=example,
            method="dc",
            max_drop=1.0,
            budget=1,
        )
    assert isinstance(err.value, RuntimeError) and "mat1 and mat2" in str(err.value)


def _neuron_search(model, trainer, example, **options):
    """search_compression of NeuronPrune on the blobs MLP, DC and MACs unless overridden."""
    settings = {
        "objective": Macs(),
        "method": "dc",
        "max_drop": 0.05,
        "budget": 4,
        "seed": 0,
        "bounds": (0.0, 0.9),
        **options,
    }
    return condensa.search_compression(
        model,
        lambda s: schemes.NeuronPrune(s),
        trainer=trainer,
        example_inputs=example,
        **settings,
    )


class _Counting(SupervisedTrainer):
    """A trainer that counts evaluations."""

    evaluations = 0

    def evaluate(self, model):
        type(self).evaluations += 1
        return super().evaluate(model)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dc", "finetune"])
def test_each_trial_model_is_evaluated_once(setup, method):
    """The method's own validation of the returned model is reused, not repeated."""
    model, trainer, example = setup
    counting = _Counting(trainer.train_loader, trainer.val_loader, lr=1e-2)
    _Counting.evaluations = 0
    options = {"steps": 4} if method == "finetune" else None
    outcome = _neuron_search(model, counting, example, method=method, method_options=options)
    trials = len(outcome.search.trials)
    per_trial = 1 if method == "dc" else 2  # fine-tuning validates DC, then the tuned model
    assert _Counting.evaluations == 1 + per_trial * trials  # + the baseline
    assert all("accuracy_se" in t.extra for t in outcome.search.trials)


@pytest.mark.slow
def test_direct_compression_search_is_deterministic_and_never_repeats(setup):
    """DC declares itself deterministic: no sparsity is compressed twice."""
    outcome = _neuron_search(*setup, budget=8, seed=1)
    points = [t.sparsity for t in outcome.search.trials]
    assert len(set(points)) == len(points)
    assert all(t.stage != "replicate" for t in outcome.search.trials)


def test_throughput_is_measured_as_a_speedup_over_the_baseline(setup):
    """Speed objectives with `relative` give speedups (baseline 1.0x) with a spread."""
    from condensa.objectives import Throughput

    timer = Throughput(batch_size=8, repeats=2, warmup=0)
    outcome = _neuron_search(*setup, objective=timer, max_drop=0.5, budget=3)
    assert outcome.baseline_objective.value == 1.0 and outcome.baseline_objective.unit == "x"
    for t in outcome.search.trials:
        assert t.extra["objective_unit"] == "x" and t.extra["objective_se"] >= 0


def test_the_uncompressed_model_is_a_known_point_where_the_scheme_leaves_it(setup):
    """Pruning at the lower bound changes nothing: the baseline is given to the search."""
    from condensa.objectives import Throughput

    model, trainer, example = setup
    timer = Throughput(batch_size=8, repeats=2, warmup=0)
    outcome = _neuron_search(model, trainer, example, objective=timer, max_drop=0.5, budget=3)
    (known,) = outcome.search.extra["known"]
    assert known["sparsity"] == 0.0 and known["index"] == -1
    assert known["accuracy"] == outcome.baseline_accuracy
    assert known["objective"] == 1.0 and known["extra"]["objective_se"] == 0.0
    assert "accuracy_se" in known["extra"]  # as the trials report it
    assert all(t.index >= 0 for t in outcome.search.trials)


@pytest.mark.parametrize(
    ("scheme", "bounds"),
    [
        (lambda s: schemes.Compose([schemes.Prune(s), schemes.Quantize("float16")]), (0.0, 0.9)),
        (lambda s: schemes.Prune(s), (0.2, 0.9)),
    ],
)
def test_no_known_point_where_the_scheme_changes_the_model(setup, scheme, bounds):
    """fp16 at sparsity 0, or a lower bound that already prunes: the baseline is not there."""
    model, trainer, example = setup
    outcome = condensa.search_compression(
        model, scheme, trainer=trainer, objective=Macs(), example_inputs=example,
        method="dc", max_drop=0.5, budget=1, seed=0, bounds=bounds,
    )  # fmt: skip
    assert "known" not in outcome.search.extra


@pytest.mark.parametrize("saved", [True, False])
def test_a_speed_answer_is_the_fastest_contender_timed_side_by_side(setup, tmp_path, saved):
    """Throughput: the credible contenders are timed together; the answer is the fastest.

    With trial models saved (as the CLI does) or not: the answer's own model is always
    compared (compressed again if it was not kept), and the returned model is the answer's.
    """
    from condensa.objectives import Throughput

    model, trainer, example = setup
    timer = Throughput(batch_size=8, repeats=2, warmup=0)
    folder = tmp_path if saved else None
    outcome = _neuron_search(
        model, trainer, example, objective=timer, max_drop=0.5, budget=5, models=folder
    )
    best = outcome.search.best
    assert best is not None
    final = outcome.search.extra.get("final_comparison")
    assert final is not None or not saved  # saved: every contender's model is on disk
    if final is not None:  # in memory, another contender's model may not have been kept
        assert len(final) >= 2 and len({r["sparsity"] for r in final}) == len(final)
        fastest = max(final, key=lambda r: (r["objective_value"], r["sparsity"]))
        assert best.sparsity == fastest["sparsity"]
        assert {r["trial"] for r in final} <= set(outcome.search.extra["candidates"])
    assert trainer.evaluate(outcome.model)["accuracy"] == best.accuracy  # the answer's model
    assert condensa.stats(outcome.model).sparsity == pytest.approx(best.extra["sparsity_actual"])


def test_a_damaged_trial_model_is_compressed_again_on_resume(setup, tmp_path):
    """A resumed search whose chosen trial file is garbage warns and compresses it again."""
    model, trainer, example = setup
    options = {
        "trainer": trainer,
        "objective": Macs(),
        "example_inputs": example,
        "method": "dc",
        "max_drop": 0.5,
        "budget": 3,
        "seed": 0,
        "journal": tmp_path / "j.jsonl",
        "models": tmp_path / "models",
    }
    first = condensa.search_compression(model, schemes.Prune, **options)
    for path in (tmp_path / "models").glob("*.condensa"):
        path.write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="cannot be read"):
        again = condensa.search_compression(model, schemes.Prune, **options)
    assert again.search.best.sparsity == first.search.best.sparsity
    assert condensa.stats(again.model).sparsity == pytest.approx(
        condensa.stats(first.model).sparsity
    )


@pytest.mark.parametrize(
    ("form", "words"),
    [({"max_drop": 0.05}, "at most 0.05 worse than"), ({"max_relative_drop": 0.1}, "10.00%")],
)
def test_the_constraint_is_reported_as_the_user_stated_it(setup, form, words):
    """A drop is described as a drop from the measured baseline, not as a bare threshold."""
    model, trainer, example = setup
    outcome = condensa.search_compression(
        model, lambda s: schemes.NeuronPrune(s), trainer=trainer, objective=Macs(),
        example_inputs=example, method="dc", budget=1, seed=0, bounds=(0.0, 0.5), **form,
    )  # fmt: skip
    description = outcome.search.constraint.description
    assert words in description and f"{outcome.baseline_accuracy:g}" in description
    assert words in outcome.search.summary()


def test_search_sparsity_takes_a_built_constraint_or_the_forms_not_both():
    from condensa.search import Constraint, search_sparsity

    built = Constraint.make(max_drop=0.1, reference_accuracy=0.9)
    result = search_sparsity(lambda s: (0.9 - s, s), constraint=built, budget=2, seed=0)
    assert result.constraint is built
    with pytest.raises(ConfigError, match="not both"):
        search_sparsity(lambda s: (0.9, s), constraint=built, accuracy_threshold=0.8)
    with pytest.raises(ConfigError, match="constraint="):
        search_sparsity(lambda s: (0.9, s), constraint=0.8)  # type: ignore[arg-type]
