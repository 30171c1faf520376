"""Failures of the machine are not results: a lost rank, an allocator, a dead worker stop the
search without journaling the trial, and the resumed search answers as the uninterrupted one.
"""

import json

import pytest

from condensa.errors import EnvironmentFailure, environmental
from condensa.search import search_sparsity
from tests.search.conftest import logistic_accuracy

GLOO = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
    "[127.0.0.1]:1940: Connection reset by peer."
)


class WorkerCrashedError(Exception):
    """Stands for Ray's error of the same name (matched by class name)."""


@pytest.mark.parametrize(
    "error, expected",
    [
        (RuntimeError(GLOO), "another process"),
        (RuntimeError("NCCL error in: ProcessGroupNCCL.cpp, unhandled system error"), "another"),
        (RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"), "out of memory"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                "memory: you tried to allocate 8589934592 bytes"
            ),
            "out of memory",
        ),
        (MemoryError(), "out of memory"),
        (WorkerCrashedError("The worker died unexpectedly"), "worker"),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), None),
        (ValueError("connection reset by peer"), None),
    ],
)
def test_environmental_errors_are_told_apart_from_the_inputs(error, expected):
    """Backend, allocator and dead-worker errors are environmental; a shape error is not."""
    why = environmental(error)
    assert (why is None) if expected is None else (expected in why)


def _trials(path):
    return [json.loads(x)["trial"] for x in path.read_text().splitlines()[1:]]


@pytest.mark.parametrize(
    "failure", [RuntimeError(GLOO), RuntimeError("CUDA out of memory"), WorkerCrashedError("x")]
)
def test_a_lost_rank_mid_trial_is_retried_on_resume(tmp_path, failure):
    """The interrupted trial is not journaled; the resumed search answers as if uninterrupted."""

    def evaluate(s):
        return logistic_accuracy(s), s

    settings = {"accuracy_threshold": 0.9, "budget": 5, "seed": 0, "strategy": "bisection"}
    reference = search_sparsity(evaluate, **settings)
    path = tmp_path / "journal.jsonl"
    calls = []

    def failing(s):
        calls.append(s)
        if len(calls) == 3:
            raise failure
        return evaluate(s)

    with pytest.raises(EnvironmentFailure, match="run the same command again to resume"):
        search_sparsity(failing, journal=path, **settings)
    assert len(_trials(path)) == 2 and all(t["error"] is None for t in _trials(path))
    resumed = search_sparsity(evaluate, journal=path, **settings)
    assert all(t["error"] is None for t in _trials(path))
    assert [t.sparsity for t in resumed.trials] == [t.sparsity for t in reference.trials]
    assert resumed.best.sparsity == reference.best.sparsity


def test_an_error_of_the_point_is_still_a_failed_trial(tmp_path):
    """A RuntimeError that is not environmental is journaled as a failed trial, search goes on."""
    path = tmp_path / "journal.jsonl"

    def evaluate(s):
        if s > 0.5:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
        return logistic_accuracy(s), s

    result = search_sparsity(
        evaluate, accuracy_threshold=0.9, budget=4, seed=0, strategy="bisection", journal=path
    )
    assert any(t.failed for t in result.trials) and len(result.trials) == 4
