"""L-C: beats direct compression where it should, returns the scheme's sparsity, spends its step
budget exactly, records convergence, and resumes to the uninterrupted result.
"""

import math

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, masking, schemes
from condensa.optim import LC, LCState, NonFiniteLossError, TrainingDivergedError
from tests.conftest import make_mlp
from tests.optim.conftest import mse

LC_TOY = dict(iterations=12, steps=30, mu_init=1e-2, mu_multiplier=1.8, metric="loss")


def test_lc_beats_direct_compression_on_least_squares(least_squares):
    """L-C reaches the best weights on its support; DC of the optimum does not."""
    x, y, model, trainer = least_squares
    scheme = schemes.Prune(0.75)
    dc = condensa.compress(model, scheme)
    lc = LC(trainer, **LC_TOY).compress(model, scheme).model
    theta = lc.weight.detach().squeeze()
    support = theta != 0
    w_best = torch.zeros_like(theta)
    w_best[support] = torch.linalg.lstsq(x[:, support], y).solution.squeeze()
    dc_gap = float((dc.weight.detach().squeeze() - w_best).norm())
    lc_gap = float((theta - w_best).norm())
    assert lc_gap < 0.5 * dc_gap
    with torch.no_grad():
        assert float(mse(lc(x), y)) < float(mse(dc(x), y))


def test_returned_model_has_scheme_sparsity_and_masks(blobs_trainer):
    torch.manual_seed(0)
    model = make_mlp()
    blobs_trainer.train(model, 30)
    result = LC(blobs_trainer, iterations=3, steps=10).compress(model, schemes.Prune(0.8))
    found = masking.masks(result.model)
    assert set(found) == {"0.weight", "2.weight", "4.weight"}
    total = sum(m.numel() for m in found.values())
    zeros = sum(int((result.model.get_submodule(f[:-7]).weight == 0).sum()) for f in found)
    assert zeros == total - round(0.2 * total)
    assert [h["iteration"] for h in result.history] == [0, 1, 2, 3]
    assert all(h["sparsity"] == pytest.approx(zeros / total) for h in result.history)
    assert result.history[0]["mu"] == 0 and "train_loss" not in result.history[0]
    assert result.best_score == max(h["val_accuracy"] for h in result.history)


def test_mu_schedule_is_geometric_and_capped(blobs_trainer):
    lc = LC(blobs_trainer, mu_init=1e-3, mu_multiplier=2.0, mu_max=5e-3)
    assert [lc.mu(j) for j in range(5)] == [0.0, 1e-3, 2e-3, 4e-3, 5e-3]


def test_input_model_untouched(blobs_trainer):
    model = make_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    LC(blobs_trainer, iterations=2, steps=5).compress(model, schemes.Prune(0.5))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_compose_prune_and_quantize(blobs_trainer):
    """With Compose, θ is fp16-representable and pruned (Δ back to float32 for λ)."""
    model = make_mlp()
    scheme = schemes.Compose([schemes.Prune(0.7), schemes.Quantize("float16")])
    result = LC(blobs_trainer, iterations=3, steps=10).compress(model, scheme)
    w = result.model[2].weight
    assert w.dtype == torch.float32 and torch.equal(w, w.half().float())
    assert masking.storage(result.model[2], "weight").dtype == "float16"
    assert result.history[-1]["sparsity"] == pytest.approx(0.7, abs=0.01)


class _Interrupt(Exception):
    pass


def _stop_after(iteration: int):
    def callback(record):
        if record.get("iteration") == iteration:
            raise _Interrupt

    return callback


@pytest.mark.parametrize("mu_schedule", ["adaptive", "geometric"])
def test_resume_gives_same_result_as_uninterrupted(blobs_trainer, tmp_path, mu_schedule):
    """Interrupted after iteration 2 and resumed from its checkpoint: the same weights,
    μ sequence and history as one uninterrupted run (the adaptive μ reads the history)."""
    model = make_mlp()
    scheme = schemes.Prune(0.8)
    options = dict(iterations=4, steps=8, mu_schedule=mu_schedule, finetune_steps=5)
    full = LC(blobs_trainer, **options).compress(model, scheme)
    with pytest.raises(_Interrupt):
        LC(
            blobs_trainer, **options, checkpoint=tmp_path / "lc.pt", callback=_stop_after(2)
        ).compress(model, scheme)
    state = LCState.load(tmp_path / "lc.pt")
    assert state.iteration == 3
    resumed = LC(blobs_trainer, **options).compress(model, scheme, state=state)
    assert resumed.history == full.history
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.best_iteration == full.best_iteration


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mu_init": 0.0}, "mu_init must be a positive number"),
        ({"mu_init": -1e-3}, "mu_init must be a positive number"),
        ({"mu_multiplier": 0.9}, "mu_multiplier must be >= 1"),
        ({"steps": 0}, "steps must be None or a positive integer, got 0"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"first_steps": 0}, "first_steps must be None or a positive integer, got 0"),
    ],
)
def test_bad_settings_are_refused(blobs_trainer, options, message):
    with pytest.raises(ConfigError, match=message):
        LC(blobs_trainer, **options)


def test_scheme_without_targets_is_refused(blobs_trainer):
    with pytest.raises(ConfigError, match="selects no tensor"):
        LC(blobs_trainer, iterations=1, steps=1).compress(make_mlp(), schemes.Rules({"*": []}))


def test_non_finite_loss_names_iteration_and_keeps_best(blobs_trainer):
    class Exploding:
        calls = 0

        def train(self, model, steps, *, extra_loss=None, lr_scale=1.0):
            self.calls += 1
            if self.calls == 2:
                raise NonFiniteLossError("non-finite training loss nan at step 3")
            return blobs_trainer.train(model, steps, extra_loss=extra_loss, lr_scale=lr_scale)

        def evaluate(self, model):
            return blobs_trainer.evaluate(model)

    with pytest.raises(TrainingDivergedError, match="L-C iteration 2 diverged") as info:
        LC(Exploding(), iterations=3, steps=5).compress(make_mlp(), schemes.Prune(0.5))
    partial = info.value.result
    assert partial is not None and len(partial.history) == 2
    assert masking.masks(partial.model)


def test_empty_validation_loader_is_refused(blobs_trainer):
    blobs_trainer.val_loader = []
    with pytest.raises(ConfigError, match="validation loader yields no samples"):
        LC(blobs_trainer, iterations=1, steps=1).compress(make_mlp(), schemes.Prune(0.5))


def test_state_load_refuses_other_files(tmp_path):
    other = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ConfigError, match="not a Condensa L-C state file"):
        LCState.load(other)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "condensa.lc_state", "version": 99}, newer)
    with pytest.raises(ConfigError, match="version 99"):
        LCState.load(newer)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="cannot read L-C state"):
        LCState.load(garbage)


def test_unknown_metric_names_available(blobs_trainer):
    with pytest.raises(
        ConfigError,
        match=r"metric 'f1' is not among the trainer's metrics "
        r"\['accuracy', 'accuracy_se', 'loss', 'top5', 'top5_se'\]",
    ):
        LC(blobs_trainer, iterations=1, steps=1, metric="f1").compress(
            make_mlp(), schemes.Prune(0.5)
        )


def test_penalty_recorded_and_finite(blobs_trainer):
    result = LC(blobs_trainer, iterations=2, steps=5).compress(
        nn.Sequential(nn.Linear(16, 4)), schemes.Prune(0.5)
    )
    assert all(math.isfinite(h["penalty"]) and h["penalty"] >= 0 for h in result.history[1:])


@pytest.mark.slow
def test_convergence_diagnostics_recorded_and_adaptive_mu_reaches_tolerance(blobs_trainer):
    """Every iteration records μ, ‖w − θ‖, its ratio to ‖θ‖ and θ's validation; the
    adaptive μ grows until the last iteration's ratio is under the tolerance."""
    torch.manual_seed(0)
    model = make_mlp()
    blobs_trainer.train(model, 30)
    lc = LC(blobs_trainer, iterations=6, steps=25, mu_init=1e-2, tolerance=1e-2)
    history = lc.compress(model, schemes.Prune(0.8)).history
    for record in history:
        assert {"mu", "distance", "relative_distance", "sparsity", "val_accuracy"} <= set(record)
    mus = [h["mu"] for h in history]
    assert mus[1] == 1e-2 and all(b >= a for a, b in zip(mus[1:], mus[2:], strict=False))
    assert history[-1]["relative_distance"] < 1e-2 < history[1]["relative_distance"]
    geometric = LC(blobs_trainer, iterations=6, steps=25, mu_init=1e-2, mu_schedule="geometric")
    slow = geometric.compress(model, schemes.Prune(0.8)).history
    assert slow[-1]["relative_distance"] > history[-1]["relative_distance"]


def test_budget_is_spent_exactly_with_final_finetuning(blobs_trainer):
    """budget = L steps + final masked fine-tuning (its share), every step counted."""
    spent = []

    class Counting:
        def train(self, model, steps, *, extra_loss=None, lr_scale=1.0, distiller=None):
            spent.append((steps, extra_loss is not None))
            return 0.0

        def evaluate(self, model):
            return {"accuracy": 0.5}

    lc = LC(Counting(), iterations=3, budget=1000, finetune_fraction=0.25)
    lc.compress(make_mlp(), schemes.Prune(0.5))
    assert sum(s for s, _ in spent) == 1000
    assert spent[-1] == (250, False) and [p for _, p in spent[:-1]] == [True] * 3
    with pytest.raises(ConfigError, match="budget 5 is too small for 10 L-C iterations"):
        LC(Counting(), iterations=10, budget=5)
