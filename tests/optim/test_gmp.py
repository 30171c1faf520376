"""Gradual magnitude pruning: the cubic schedule, exact final sparsity, every scheme."""

import pytest
import torch

import condensa
from condensa import ConfigError, masking, schemes
from condensa.compress import with_groups
from condensa.optim import GMP, Distillation
from condensa.optim.gmp import cubic_fraction
from condensa.schemes.scaling import scaled
from tests.conftest import make_mlp


class Stepper:
    """A trainer that takes no optimizer step but runs the step callback and records
    the model's mask sparsity after each step."""

    def __init__(self, inner):
        self.inner = inner
        self.sparsity: list[float] = []

    def train(self, model, steps, *, extra_loss=None, lr_scale=1.0, step_callback=None,
              distiller=None):  # fmt: skip
        for done in range(1, steps + 1):
            if step_callback is not None:
                step_callback(done)
            found = masking.masks(model)
            zeros = sum(int((~m).sum()) for m in found.values())
            self.sparsity.append(zeros / sum(m.numel() for m in found.values()))
        return 0.0

    def evaluate(self, model):
        return self.inner.evaluate(model)


def _zeros(model) -> int:
    return sum(int((~m).sum()) for m in masking.masks(model).values())


def test_cubic_fraction_shape():
    """0 before the start, 1 from the end on, concave in between (fast early, slow late)."""
    assert cubic_fraction(0, 10, 110) == 0 and cubic_fraction(10, 10, 110) == 0
    assert cubic_fraction(110, 10, 110) == 1 and cubic_fraction(500, 10, 110) == 1
    assert cubic_fraction(60, 10, 110) == pytest.approx(1 - 0.5**3)
    fractions = [cubic_fraction(t, 0, 100) for t in range(0, 101, 10)]
    steps = [b - a for a, b in zip(fractions, fractions[1:], strict=False)]
    assert all(x > y for x, y in zip(steps, steps[1:], strict=False))


def test_sparsity_follows_the_schedule_and_ends_exactly_at_the_target(blobs_trainer):
    """Masks change only at update steps, follow s_f * cubic(t), and from t1 on equal the
    count direct compression gives for the same scheme."""
    torch.manual_seed(0)
    model = make_mlp()
    trainer = Stepper(blobs_trainer)
    gmp = GMP(trainer, steps=100, start=0.1, end=0.6, frequency=10)
    result = gmp.compress(model, schemes.Prune(0.9))
    target = _zeros(condensa.compress(model, schemes.Prune(0.9)))
    total = sum(m.numel() for m in masking.masks(result.model).values())
    assert _zeros(result.model) == target
    updates = dict(gmp.schedule())
    assert sorted(updates) == [10, 20, 30, 40, 50, 60]
    for step, fraction in updates.items():
        assert trainer.sparsity[step - 1] == pytest.approx(0.9 * fraction, abs=1.5 / total)
    changes = [i + 1 for i in range(1, 100) if trainer.sparsity[i] != trainer.sparsity[i - 1]]
    assert set(changes) <= set(updates)
    assert trainer.sparsity[59:] == [target / total] * 41


@pytest.mark.parametrize(
    "scheme",
    [
        schemes.FilterPrune(0.5),
        schemes.BlockPrune(0.5, block=(2, 2), types=["Linear"]),
        schemes.Compose([schemes.Prune(0.7), schemes.Quantize("float16")]),
        schemes.NMPrune(2, 4, exclude=["conv1"]),
    ],
    ids=["filters-grouped", "blocks", "prune+fp16", "nm"],
)
def test_every_scheme_ends_like_direct_compression(cnn, blobs_trainer, scheme):
    """The final masks prune as many entries as DC of the same scheme, on the CNN with
    dependency groups bound; quantization stays on."""
    x = torch.randn(4, 1, 8, 8)
    scheme = with_groups(cnn, scheme, x)

    class CNNData:
        def evaluate(self, model):
            return {"accuracy": float(model(x).argmax(1).eq(0).float().mean())}

    result = GMP(Stepper(CNNData()), steps=20, frequency=2).compress(cnn, scheme)
    assert _zeros(result.model) == _zeros(condensa.compress(cnn, scheme))
    if isinstance(scheme, schemes.Compose):
        assert masking.storage(result.model.conv2, "weight").dtype == "float16"


def test_gmp_recovers_accuracy_and_leaves_input_alone(blobs_trainer):
    torch.manual_seed(0)
    model = make_mlp()
    blobs_trainer.train(model, 40)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dc = blobs_trainer.evaluate(condensa.compress(model, schemes.Prune(0.9)))["accuracy"]
    result = GMP(blobs_trainer, steps=60, evaluations=3).compress(model, schemes.Prune(0.9))
    assert result.best_score > dc
    assert [h["steps"] for h in result.history] == [48, 54, 60]
    assert result.metrics["accuracy"] == result.best_score
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_scaled_scheme_keeps_everything_but_sparsity(cnn):
    x = torch.randn(2, 1, 8, 8)
    grouped = with_groups(cnn, schemes.FilterPrune(0.6), x)
    half = scaled(grouped, 0.5)
    assert half.sparsity == pytest.approx(0.3) and half.groups == grouped.groups
    assert grouped.sparsity == 0.6  # the original is not changed
    rules = schemes.Rules({"sparsity": 0.8, "*": [{"type": "magnitude"}]})
    assert scaled(rules, 0.25).sparsity == pytest.approx(0.2)
    assert scaled(schemes.Quantize("int8"), 0.5) == schemes.Quantize("int8")
    with pytest.raises(ConfigError, match=r"fraction must be in \[0, 1\]"):
        scaled(grouped, 1.5)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"start": 0.8, "end": 0.5}, "need 0 <= start < end <= 1"),
        ({"frequency": 0}, "frequency must be a positive integer"),
        ({"evaluations": 500}, "evaluations must be an integer in"),
        ({"distill": "yes"}, "distill must be a Distillation"),
    ],
)
def test_bad_settings_are_refused(blobs_trainer, options, message):
    with pytest.raises(ConfigError, match=message):
        GMP(blobs_trainer, **{"steps": 100, **options})


def test_a_trainer_without_step_callback_is_refused(blobs_trainer):
    class Plain:
        def train(self, model, steps, *, extra_loss=None, lr_scale=1.0):
            return 0.0

        def evaluate(self, model):
            return {"accuracy": 1.0}

    with pytest.raises(ConfigError, match="does not accept step_callback"):
        GMP(Plain(), steps=10)
    assert GMP(blobs_trainer, steps=10, distill=Distillation()).distill == Distillation()


def test_scheme_without_pruning_is_refused(blobs_trainer):
    with pytest.raises(ConfigError, match="prunes no tensor"):
        GMP(blobs_trainer, steps=10).compress(make_mlp(), schemes.Quantize("float16"))
