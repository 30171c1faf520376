"""Fine-tuning and the trainer: accuracy recovers with masks kept, schedules are as documented,
training is deterministic under a seed, bad settings are refused.
"""

import pytest
import torch

from condensa import ConfigError, masking, schemes
from condensa.optim import DC, FineTune, SupervisedTrainer, perplexity, topk_correct
from condensa.optim.trainer import lr_factor
from tests.conftest import make_mlp


def test_finetune_recovers_accuracy_and_keeps_masks(blobs_trainer):
    torch.manual_seed(0)
    model = make_mlp()
    blobs_trainer.train(model, 40)
    result = FineTune(blobs_trainer, steps=40, evaluations=2).compress(model, schemes.Prune(0.95))
    dc_accuracy = result.history[0]["val_accuracy"]
    assert result.best_score >= dc_accuracy
    assert result.best_score == blobs_trainer.evaluate(result.model)["accuracy"]
    for fqn, mask in masking.masks(result.model).items():
        weight = result.model.get_submodule(fqn[: -len(".weight")]).weight
        assert (weight[~mask] == 0).all()
    assert [h["steps"] for h in result.history] == [0, 20, 40]


def test_lr_rewinding_uses_full_learning_rate(blobs_trainer):
    seen = []

    class Recording:
        def train(self, model, steps, *, extra_loss=None, lr_scale=1.0):
            seen.append(lr_scale)
            return 0.0

        def evaluate(self, model):
            return blobs_trainer.evaluate(model)

    FineTune(Recording(), steps=4, lr_rewinding=True).compress(make_mlp(), schemes.Prune(0.5))
    FineTune(Recording(), steps=4, finetune_lr_scale=0.05).compress(make_mlp(), schemes.Prune(0.5))
    assert seen == [1.0, 0.05]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"steps": 4, "evaluations": 5}, "evaluations"),
        ({"steps": 4, "finetune_lr_scale": 0}, "finetune_lr_scale"),
    ],
)
def test_bad_finetune_settings(blobs_trainer, options, message):
    with pytest.raises(ConfigError, match=message):
        FineTune(blobs_trainer, **options)


def test_dc_method_evaluates_once(blobs_trainer):
    result = DC(blobs_trainer).compress(make_mlp(), schemes.Prune(0.5))
    assert len(result.history) == 1 and result.best_score == result.history[0]["val_accuracy"]
    assert DC().compress(make_mlp(), schemes.Prune(0.5)).best_score is None


def test_trainer_schedules_decay_to_zero(blobs_trainer):
    for schedule in ("cosine", "linear"):
        assert lr_factor(schedule, 0, 10) == 1.0
        assert lr_factor(schedule, 5, 10) == pytest.approx(0.5)
        assert lr_factor(schedule, 10, 10) == pytest.approx(0.0, abs=1e-12)


def test_trainer_bad_input():
    with pytest.raises(ConfigError, match="unknown schedule 'step'"):
        SupervisedTrainer([], [], schedule="step")
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        SupervisedTrainer([], [], lr=0)
    with pytest.raises(ConfigError, match="training loader yields no batches"):
        SupervisedTrainer([], []).train(make_mlp(), 1)


def test_training_is_deterministic_under_seed(blobs_trainer):
    a, b = make_mlp(), make_mlp()
    b.load_state_dict(a.state_dict())
    for model in (a, b):
        torch.manual_seed(3)
        blobs_trainer.train(model, 10)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_topk_and_perplexity():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    targets = torch.tensor([2, 0])
    assert topk_correct(logits, targets, 1) == 1
    assert topk_correct(logits, targets, 2) == 2
    assert topk_correct(logits, targets, 10) == 2
    assert perplexity(0.0) == 1.0
    assert perplexity(2.0) == pytest.approx(7.389056)
    assert perplexity(1e6) == float("inf")
