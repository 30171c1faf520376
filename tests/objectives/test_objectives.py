"""Objectives measure what would be deployed (thinned, baked), keep their unit, spread and
direction, and refuse bad settings.
"""

import statistics

import pytest
import torch
from torch import nn

import condensa
from condensa import ConfigError, schemes, zoo
from condensa.objectives import FileSize, Latency, Macs, Measurement, Throughput, deployable


def test_measurement_median_and_iqr():
    m = Measurement.of([1.0, 2.0, 3.0, 4.0, 100.0], "s", higher_is_better=False)
    assert m.value == 3.0 and m.spread > 0 and m.score == -3.0
    assert "s" in str(m)


def test_a_measurement_survives_a_trial_record_whole():
    """record() -> trial extra -> Trial.measurement gives back value, unit, spread and
    direction; the standard error of the median is recorded for the surrogates."""
    from condensa.search import Trial

    for higher in (True, False):
        measured = Measurement.of([3.0, 4.0, 5.0, 9.0], "samples/s", higher_is_better=higher)
        trial = Trial(0, 0.5, 0.9, measured.score, True, extra=measured.record())
        back = trial.measurement
        assert back == Measurement(measured.value, "samples/s", measured.spread, higher)
        assert trial.extra["objective_se"] == pytest.approx(
            1.2533 * statistics.stdev([3, 4, 5, 9]) / 2
        )
    assert Measurement(10.0, "bytes", higher_is_better=False).record()["objective_se"] == 0.0
    assert "objective_se" not in Measurement(1.0, "s", spread=0.5).record()  # unknown
    assert Trial(0, 0.5, None, None, False, error="boom").measurement is None
    assert Trial(0, 0.5, 0.9, 2.5, True).measurement == Measurement(2.5, "")  # plain float


def test_throughput_and_latency_measure_the_thinned_model():
    torch.manual_seed(0)
    model = zoo.DigitsCNN(width=0.5)
    x = torch.randn(1, 1, 8, 8)
    masked = condensa.compress(model, schemes.FilterPrune(0.5), x)
    runnable = deployable(masked, x)
    assert sum(p.numel() for p in runnable.parameters()) < sum(
        p.numel() for p in model.parameters()
    )
    t = Throughput(batch_size=4, threads=1, warmup=1, repeats=3)(masked, x)
    lat = Latency(threads=1, warmup=0, repeats=3)(masked, x)
    assert t.unit == "samples/s" and t.value > 0 and len(t.samples) == 3 and t.higher_is_better
    assert lat.unit == "s" and lat.value > 0 and not lat.higher_is_better
    assert torch.get_num_threads() >= 1


def test_deployable_bakes_unstructured_masks():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    masked = condensa.compress(model, schemes.Prune(0.5))
    plain = deployable(masked, torch.randn(1, 4))
    assert not condensa.masking.masks(plain)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Throughput(batch_size=0), "batch_size must be a positive integer"),
        (lambda: Throughput(threads=0), "threads must be None or a positive integer"),
        (lambda: Latency(repeats=0), "repeats"),
        (lambda: Macs("flops"), "mode = .* is not valid; valid: effective, sparse, dense"),
    ],
)
def test_bad_settings(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_file_size_is_the_saved_file_size(tmp_path):
    """FileSize measures the bytes save() writes."""
    model = condensa.compress(zoo.LeNet300100(), schemes.Prune(0.9))
    measured = FileSize()(model)
    path = condensa.save(model, tmp_path / "m.condensa")
    assert measured.value == path.stat().st_size and measured.unit == "bytes"


def test_macs_modes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    x = torch.randn(1, 10)
    masked = condensa.compress(model, schemes.NeuronPrune(0.5))
    assert Macs("dense")(masked, x).value == 10 * 20 + 20 * 5
    assert Macs("effective")(masked, x).value == 10 * 10 + 10 * 5
    sparse = condensa.compress(model, schemes.Prune(0.5, allocation="uniform"))
    assert Macs("sparse")(sparse, x).value < Macs("dense")(sparse, x).value


def _scripted_timer(candidate_times):
    """A Throughput whose passes take scripted seconds: 1.0 for the reference, then the
    candidate's next value; ``passes`` records every timed model."""
    from dataclasses import dataclass

    passes, times = [], iter(candidate_times)

    @dataclass(frozen=True)
    class Scripted(Throughput):
        def _runnable(self, model, example_inputs):
            return model

        def _passes(self, runnable, example_inputs):
            passes.append(runnable)
            return [1.0 if runnable.reference else next(times)]

    return Scripted(), passes


def _pair():
    reference, candidate = nn.Identity(), nn.Identity()
    reference.reference, candidate.reference = True, False
    return reference, candidate


def test_a_speedup_stops_timing_when_its_ratios_agree_and_not_before():
    """Steady ratios: three rounds, not five. Scattered ratios: every round is timed."""
    reference, candidate = _pair()
    steady, passes = _scripted_timer([0.5] * 5)
    found = steady.relative(reference, candidate, torch.zeros(1))
    assert found.value == pytest.approx(2.0) and len(passes) == 2 * 3
    scattered, passes = _scripted_timer([0.5, 1.0, 0.5, 1.0, 0.5])
    scattered.relative(reference, candidate, torch.zeros(1))
    assert len(passes) == 2 * 5
    fixed, passes = _scripted_timer([0.5] * 5)
    fixed.relative(reference, candidate, torch.zeros(1), tolerance=None)
    assert len(passes) == 2 * 5
