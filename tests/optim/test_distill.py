"""Distillation: the loss, the trainers' use of it, and every method's option."""

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, schemes
from condensa.optim import GMP, LC, Distillation, FineTune
from condensa.optim.distill import soft_target_loss
from condensa.optim.language import LanguageModelTrainer
from condensa.zoo import LSTMLanguageModel
from tests.conftest import make_mlp


def test_soft_target_loss_is_zero_when_student_equals_teacher():
    """KL(p || p) = 0 at any temperature, for class and token logits alike."""
    torch.manual_seed(0)
    for shape in [(8, 10), (5, 3, 50)]:
        logits = torch.randn(shape) * 3
        for t in (1.0, 4.0):
            assert float(soft_target_loss(logits, logits.clone(), t)) == pytest.approx(0, abs=1e-6)
        assert float(soft_target_loss(logits + 0.5 * torch.randn(shape), logits, 4.0)) > 1e-3


def test_distiller_loss_is_the_task_loss_scaled_when_student_equals_teacher():
    """The mixed loss is (1 - weight) * task when the soft-target term vanishes."""
    torch.manual_seed(0)
    model = make_mlp()
    x = torch.randn(16, 16)
    distiller = Distillation(weight=0.75).bind(model)
    out = model(x)
    task = nn.functional.cross_entropy(out, torch.zeros(16, dtype=torch.long))
    mixed = distiller.loss(task, out, distiller.teacher_output(x))
    assert float(mixed.detach()) == pytest.approx(0.25 * float(task.detach()), rel=1e-5)


def test_soft_target_gradient_moves_student_towards_teacher():
    """Training on soft targets alone (weight 1) lowers the student-teacher KL."""
    torch.manual_seed(0)
    teacher, student = make_mlp(), make_mlp()
    x = torch.randn(64, 16)
    distiller = Distillation(weight=1.0, temperature=2.0).bind(teacher)
    target = distiller.teacher_output(x)
    before = float(soft_target_loss(student(x), target, 2.0))
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(50):
        loss = distiller.loss(torch.tensor(0.0), student(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(soft_target_loss(student(x), target, 2.0)) < 0.2 * before


def test_teacher_is_a_frozen_copy():
    """Binding copies the teacher: training the student or the original changes nothing in it."""
    model = make_mlp()
    distiller = Distillation().bind(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(distiller.teacher[0].weight, model[0].weight)
    assert not any(p.requires_grad for p in distiller.teacher.parameters())
    assert not distiller.teacher.training


def test_feature_matching_ignores_channels_the_student_zeroed():
    """A channel a mask removed is not asked to match; a thinned student matches the kept ones."""
    torch.manual_seed(0)
    teacher = make_mlp()
    distiller = Distillation(features=("0",), feature_weight=1.0).bind(teacher)
    student = make_mlp()
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        student[0].weight[:5] = 0
        student[0].bias[:5] = 0
    x = torch.randn(8, 16)
    with distiller.watch(student):
        student(x)
        distiller.teacher_output(x)
        assert float(distiller.feature_loss()) == pytest.approx(0, abs=1e-10)
    kept = list(range(5, 32))
    thinned = nn.Linear(16, len(kept))
    with torch.no_grad():
        thinned.weight.copy_(teacher[0].weight[kept])
        thinned.bias.copy_(teacher[0].bias[kept])
    narrow = Distillation(features=("0",)).bind(teacher, channels={"0": kept})
    student2 = nn.Sequential(thinned)
    with narrow.watch(student2):
        student2(x)
        narrow.teacher_output(x)
        assert float(narrow.feature_loss()) == pytest.approx(0, abs=1e-10)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"temperature": 0}, "temperature must be a positive number"),
        ({"weight": 1.5}, r"weight must be a number in \[0, 1\]"),
        ({"feature_weight": -1}, "feature_weight must be >= 0"),
        ({"tempreature": 2}, "unknown distill key"),
        ("yes", "distill must be true/false or a table"),
    ],
)
def test_bad_distillation_specs_are_refused(spec, message):
    with pytest.raises(ConfigError, match=message):
        Distillation.from_dict(spec)


def test_missing_feature_module_is_named():
    with pytest.raises(ConfigError, match=r"\['encoder'\] not found"):
        Distillation(features=("encoder",)).bind(make_mlp())


def test_every_method_trains_with_distillation(blobs_trainer):
    """Fine-tuning, GMP and L-C accept distill and give a working compressed model."""
    torch.manual_seed(0)
    model = make_mlp()
    blobs_trainer.train(model, 40)
    base = blobs_trainer.evaluate(model)["accuracy"]
    dc = blobs_trainer.evaluate(condensa.compress(model, schemes.Prune(0.8)))["accuracy"]
    spec = Distillation()
    for method in (
        FineTune(blobs_trainer, steps=30, lr_rewinding=True, distill=spec),
        GMP(blobs_trainer, steps=40, distill=spec),
        LC(blobs_trainer, iterations=2, budget=40, distill=spec),
    ):
        result = method.compress(model, schemes.Prune(0.8))
        assert result.best_score > dc + 0.3 and result.best_score >= base - 0.15, method


def test_a_trainer_without_distiller_is_refused_with_distillation(blobs_trainer):
    class Plain:
        def train(self, model, steps, *, extra_loss=None, lr_scale=1.0):
            return 0.0

        def evaluate(self, model):
            return {"accuracy": 1.0}

    with pytest.raises(ConfigError, match="does not accept distiller"):
        FineTune(Plain(), steps=5, distill=Distillation())
    FineTune(Plain(), steps=5)  # without distillation it is fine


def test_language_model_distills_token_distributions():
    """The LM trainer carries the teacher's hidden state and mixes its token distributions."""
    torch.manual_seed(0)
    tokens = torch.randint(0, 30, (400, 4))
    trainer = LanguageModelTrainer(tokens, tokens[:100], bptt=10, lr=1.0)
    model = LSTMLanguageModel(30, embedding_dim=16, hidden_dim=16, dropout=0.0)
    seen = []

    distiller = Distillation(weight=1.0).bind(model)
    original = distiller.loss

    def loss(task, student, teacher):
        seen.append(float(soft_target_loss(student, teacher, 4.0)))
        return original(task, student, teacher)

    distiller.loss = loss  # type: ignore[method-assign]
    trainer.train(model, 3, distiller=distiller)
    assert seen[0] == pytest.approx(0, abs=1e-6)  # identical student and teacher at first
    assert len(seen) == 3


def test_a_pruned_decoder_fine_tuned_with_distillation_moves_toward_its_teacher():
    """FineTune + Distillation on a causal LM: the student's KL to the teacher falls."""
    import copy

    from condensa import compress
    from condensa.optim import FineTune
    from condensa.optim.causal_lm import CausalLMTrainer
    from condensa.optim.distill import Distillation, soft_target_loss
    from tests.optim.test_oneshot import PRUNE, TEXT, CharTokenizer, batches, tiny_llama

    teacher = tiny_llama()
    with torch.no_grad():  # sharper next-token distributions, as a trained model has
        teacher.lm_head.weight.mul_(8)
    before = copy.deepcopy(teacher.state_dict())
    trainer = CausalLMTrainer(
        CharTokenizer(), TEXT[:40], TEXT[40:], window=16, eval_tokens=64, last_words=0, lr=3e-3
    )
    x = batches(1, seed=5)[0]

    def kl(model):
        with torch.no_grad():
            return float(soft_target_loss(model(x).logits, teacher(x).logits, 1.0))

    start = kl(compress(teacher, PRUNE))
    tuned = FineTune(trainer, steps=30, metric="perplexity", distill=Distillation(weight=1.0))
    plain = FineTune(trainer, steps=30, metric="perplexity")
    distilled = kl(tuned.compress(teacher, PRUNE).model)
    assert distilled < 0.7 * start and distilled < kl(plain.compress(teacher, PRUNE).model)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
