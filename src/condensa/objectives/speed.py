"""Measured speed of the deployable model: throughput and latency."""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from condensa.errors import check_int
from condensa.inputs import Inputs, repeat_batch, run_forward, to_device
from condensa.objectives.measurement import Measurement
from condensa.objectives.registry import register_objective
from condensa.thinning.deploy import deployable
from condensa.threads import threads

K = TypeVar("K")


SETTLED = 0.02
"""Standard error of a speedup, as a fraction of it, at which a trial's timing stops: far
below the 10-20 % that separate timings of one model differ by on a shared 2-core
machine (``benchmarks/llm_int8_search.py``), so more rounds would not change a ranking."""


def _settled(ratios: list[float], tolerance: float) -> bool:
    """Whether the standard error of the mean of ``ratios`` is within ``tolerance`` of it."""
    mean = statistics.fmean(ratios)
    error = statistics.stdev(ratios) / len(ratios) ** 0.5
    return error <= tolerance * abs(mean)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class _Timer:
    batch_size: int = 64
    threads: int | None = None
    warmup: int = 3
    repeats: int = 20

    def __post_init__(self) -> None:
        for name in ("batch_size", "warmup", "repeats"):
            value = getattr(self, name)
            minimum = 0 if name == "warmup" else 1
            check_int(name, value, minimum)
        check_int("threads", self.threads, optional=True)

    def times(self, model: nn.Module, example_inputs: Inputs) -> list[float]:
        """Seconds per forward pass of a batch, ``repeats`` times after ``warmup``.

        ``example_inputs`` is a tensor, a tuple or a dict of keyword arguments; every
        batched tensor in it is tiled to ``batch_size`` rows.
        """
        return self._passes(self._runnable(model, example_inputs), example_inputs)

    def _runnable(self, model: nn.Module, example_inputs: Inputs) -> nn.Module:
        """The form of ``model`` that is timed: the deployable model."""
        return deployable(model, example_inputs)

    def _passes(self, runnable: nn.Module, example_inputs: Inputs) -> list[float]:
        """:meth:`times` of a model already made deployable."""
        device = next(runnable.parameters()).device
        batch = to_device(repeat_batch(example_inputs, self.batch_size), device)
        out = []
        with threads(self.threads), torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(self.warmup):
                run_forward(runnable, batch)
            _sync(device)
            for _ in range(self.repeats):
                start = time.perf_counter()
                run_forward(runnable, batch)
                _sync(device)
                out.append(time.perf_counter() - start)
        return out

    def relative(
        self,
        reference: nn.Module,
        candidate: nn.Module,
        example_inputs: Inputs,
        *,
        rounds: int = 5,
        tolerance: float | None = SETTLED,
    ) -> Measurement:
        """Speedup of ``candidate`` over ``reference`` (``"x"``, higher is better).

        The two models are timed in up to ``rounds`` interleaved rounds and each round
        gives one ratio, so machine drift (other processes, clock changes) cancels; the
        spread of the ratios is the measurement's noise. Timing stops after three rounds
        once the ratios' standard error is within ``tolerance`` (see :meth:`compare`).
        """
        found = self.compare(
            reference, {0: candidate}, example_inputs, rounds=rounds, tolerance=tolerance
        )
        return found[0]

    def compare(
        self,
        reference: nn.Module,
        candidates: Mapping[K, nn.Module],
        example_inputs: Inputs,
        *,
        rounds: int = 5,
        seconds: float | None = None,
        tolerance: float | None = None,
    ) -> dict[K, Measurement]:
        """Speedup of each candidate over ``reference``, all measured side by side.

        Each of the ``rounds`` rounds times the reference, then every candidate in
        turn (one ratio each), so a machine state lasting seconds (a busy neighbour, a
        clock change) falls on all of them alike and their ranking holds. With
        ``seconds``, no round starts once that much time has passed (at least two run):
        large models get fewer rounds, not minutes of timing. With ``tolerance``, no
        round starts once three have run and every candidate's standard error of the
        mean ratio is at most ``tolerance`` times that mean.
        """
        check_int("rounds", rounds)
        runnable = {key: self._runnable(m, example_inputs) for key, m in candidates.items()}
        base = self._runnable(reference, example_inputs)
        ratios: dict[K, list[float]] = {key: [] for key in runnable}
        start = time.perf_counter()
        for done in range(rounds):
            if seconds is not None and done >= 2 and time.perf_counter() - start >= seconds:
                break
            if (
                tolerance is not None
                and done >= 3
                and all(_settled(values, tolerance) for values in ratios.values())
            ):
                break
            ref = statistics.median(self._passes(base, example_inputs))
            for key, model in runnable.items():
                ratios[key].append(ref / statistics.median(self._passes(model, example_inputs)))
        return {key: Measurement.of(values, "x") for key, values in ratios.items()}


@register_objective("throughput")
@dataclass(frozen=True)
class Throughput(_Timer):
    """Samples per second of the deployable (thinned) model: median and IQR.

    Args:
        batch_size: samples per forward pass (>= 1).
        threads: torch threads while measuring (None: unchanged).
        warmup: untimed passes first.
        repeats: timed passes (>= 1).

    """

    def __call__(self, model: nn.Module, example_inputs: Inputs) -> Measurement:
        """Measure ``model`` on batches built from ``example_inputs`` (tensor, tuple or dict)."""
        return Measurement.of(
            [self.batch_size / t for t in self.times(model, example_inputs)], "samples/s"
        )


@register_objective("latency")
@dataclass(frozen=True)
class Latency(_Timer):
    """Seconds per forward pass of one batch (default batch 1): median and IQR; lower is better."""

    batch_size: int = 1

    def __call__(self, model: nn.Module, example_inputs: Inputs) -> Measurement:
        """Measure ``model``."""
        return Measurement.of(self.times(model, example_inputs), "s", higher_is_better=False)


def compare_throughput(
    reference: nn.Module,
    candidate: nn.Module,
    example_inputs: Inputs,
    *,
    batch_size: int = 64,
    threads: int | None = None,
    rounds: int = 5,
    repeats: int = 10,
) -> tuple[Measurement, Measurement]:
    """Throughput of two models measured side by side: ``rounds`` interleaved rounds.

    Interleaving keeps machine noise (other processes, frequency changes) from favouring
    either model. Returns ``(reference, candidate)`` measurements over all samples.
    """
    check_int("rounds", rounds)
    timer = Throughput(batch_size=batch_size, threads=threads, warmup=2, repeats=repeats)
    runnable = [deployable(m, example_inputs) for m in (reference, candidate)]
    samples: list[list[float]] = [[], []]
    for _ in range(rounds):
        for i, model in enumerate(runnable):
            samples[i] += timer(model, example_inputs).samples
    return (
        Measurement.of(samples[0], "samples/s"),
        Measurement.of(samples[1], "samples/s"),
    )
