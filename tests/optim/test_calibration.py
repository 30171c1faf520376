"""BatchNorm recalibration and the optional masked fine-tuning at the end of L-C."""

import pytest
import torch
from torch import nn

from condensa import ConfigError, compress, masking, schemes
from condensa.optim import LC, SupervisedTrainer
from condensa.optim.trainer import calibrate_batchnorm


def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 3)
    )


def _batches(n=4):
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(16, 1, 8, 8, generator=g) + 2.0, torch.randint(3, (16,), generator=g))
        for _ in range(n)
    ]


def test_calibration_matches_the_compressed_model_statistics():
    """After FilterPrune, pruned channels' running mean/var become those of a zero output."""
    model = _bn_model()
    model.train()
    with torch.no_grad():
        for x, _ in _batches():
            model(x)  # gather statistics of the dense model
    small = compress(model, schemes.FilterPrune(0.5))
    pruned = ~masking.masks(small)["0.weight"].flatten(1).any(1)
    assert pruned.sum() == 4
    assert (small[1].running_mean[pruned].abs() > 0).all()  # stale: dense statistics
    weights = {k: v.clone() for k, v in small.state_dict().items() if "running" not in k}
    assert calibrate_batchnorm(small, _batches(), batches=4)
    assert torch.equal(small[1].running_mean[pruned], torch.zeros(4))
    assert torch.equal(small[1].running_var[pruned], torch.zeros(4))
    assert small[1].momentum == 0.1  # restored
    for k, v in small.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k  # no weight changed
    # the calibrated statistics are the exact statistics of the calibration data
    x = torch.cat([b[0] for b in _batches()])
    kept = ~pruned
    with torch.no_grad():
        features = small[0](x)[:, kept]
    torch.testing.assert_close(
        small[1].running_mean[kept], features.mean((0, 2, 3)), rtol=1e-4, atol=1e-5
    )


def test_calibration_is_a_no_op_without_batchnorm():
    model = nn.Linear(4, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not calibrate_batchnorm(model, [(torch.randn(2, 4), None)], batches=2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_lc_with_filter_pruning_recovers_with_calibration_and_polish():
    """On a BN CNN, stale statistics ruin θ; calibration and the final fine-tune fix it."""
    torch.manual_seed(0)
    batches = _batches(8)
    trainer = SupervisedTrainer(batches, batches, lr=1e-2, schedule="cosine")
    model = _bn_model()
    trainer.train(model, 150)
    baseline = trainer.evaluate(model)["accuracy"]
    options = {"iterations": 2, "steps": 20}
    stale = LC(trainer, calibrate_batches=0, **options).compress(model, schemes.FilterPrune(0.5))
    fixed = LC(trainer, finetune_steps=60, **options).compress(model, schemes.FilterPrune(0.5))
    accuracy = {
        name: trainer.evaluate(r.model)["accuracy"]
        for name, r in (("stale", stale), ("fixed", fixed))
    }
    assert accuracy["fixed"] > accuracy["stale"]
    assert accuracy["fixed"] >= baseline - 0.15
    assert fixed.history[-1]["finetune_steps"] == 60.0
    mask = masking.masks(fixed.model)["0.weight"]
    assert (fixed.model[0].weight[~mask] == 0).all()  # the polish kept the masks


@pytest.mark.parametrize(
    "options, message",
    [({"finetune_steps": -1}, "finetune_steps"), ({"calibrate_batches": 1.5}, "calibrate_batches")],
)
def test_bad_calibration_settings(options, message):
    trainer = SupervisedTrainer(_batches(), _batches())
    with pytest.raises(ValueError, match=message):
        LC(trainer, **options)


def test_a_calibration_that_would_not_fit_is_refused_before_any_work(monkeypatch):
    """The estimate and what is available are both named; the model is not touched."""
    from condensa.optim import calibration
    from condensa.optim.oneshot import Wanda
    from tests.optim.test_oneshot import PRUNE, batches, tiny_llama

    model = tiny_llama()
    need = calibration.estimate_bytes(model, batches(3))
    params = sum(p.numel() * 4 for p in model.parameters())
    assert need > params + 2 * 3 * 2 * 24 * 64 * 4  # the copy and hidden states twice
    monkeypatch.setattr(calibration, "available_bytes", lambda: need // 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"needs about 0.0 GiB .* 0.0 GiB is available"):
        Wanda().compress(model, PRUNE, batches(3))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    monkeypatch.setattr(calibration, "available_bytes", lambda: need)
    Wanda().compress(model, PRUNE, batches(3))  # exactly enough: runs


def test_available_memory_is_read_from_meminfo_and_unknown_without_it(monkeypatch, tmp_path):
    from condensa.optim import calibration

    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal: 100 kB\nMemAvailable:  2048 kB\n")
    monkeypatch.setattr(calibration, "MEMINFO", str(fake))
    assert calibration.available_bytes() == 2048 * 1024
    monkeypatch.setattr(calibration, "MEMINFO", str(tmp_path / "missing"))
    assert calibration.available_bytes() is None
