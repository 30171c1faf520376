"""Trials as Ray tasks: a local Ray with N workers, or an existing cluster.

Needs the ``condensa[ray]`` extra. Each trial is one task declaring ``cpus_per_trial``
CPUs and ``gpus_per_trial`` GPUs (Ray sets ``OMP_NUM_THREADS`` in the worker to its
CPUs). The function ``evaluate`` is shipped to the workers once per round (pickled by
Ray): it must not rely on state kept in the driver, and any files it writes (trial
models) must be on storage the driver reads too (any path on one machine; a shared
file system on a cluster).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from condensa.errors import ConfigError, check_int
from condensa.search.pool import Outcome, call
from condensa.search.trial import Point

INSTALL = 'pip install "condensa[ray]"'


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"parallel trials on Ray need the ray extra, which is not installed: {INSTALL}"
        ) from None
    return ray


class RayPool:
    """Runs each trial of a round as a Ray task.

    Args:
        workers: trials at once (the points proposed per round).
        address: an existing cluster's address (``"auto"``, ``"ray://host:10001"``);
            None starts a local Ray sized for ``workers`` trials, stopped by
            :meth:`close`.
        cpus_per_trial: CPUs each trial task declares (and its torch threads).
        gpus_per_trial: GPUs each trial task declares (may be fractional).

    Raises:
        ConfigError: Ray is not installed, or a bad number of workers or resources.

    """

    def __init__(
        self,
        workers: int,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
    ) -> None:
        check_int("workers", workers)
        for name, value in (("cpus_per_trial", cpus_per_trial), ("gpus_per_trial", gpus_per_trial)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        ray = _ray()
        self.workers = workers
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,
            }
            if address is None:
                options["num_cpus"] = max(1, math.ceil(workers * cpus_per_trial))
                options["num_gpus"] = math.ceil(workers * gpus_per_trial)
            ray.init(address=address, **options)
        self._task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial)(call)

    def run(
        self, evaluate: Callable[[Point], Any], points: Sequence[Point]
    ) -> Iterator[tuple[int, Outcome]]:
        """Submit every point, then yield outcomes in completion order.

        A task whose worker died is yielded as a failed outcome; closing the generator
        early (the driver stops) cancels the tasks still running.
        """
        ray = self._ray
        shared = ray.put(evaluate)
        pending = {self._task.remote(shared, point): i for i, point in enumerate(points)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                position = pending.pop(done[0])
                try:
                    outcome = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - a lost worker is a failed trial
                    outcome = Outcome(None, exc, math.nan)
                yield position, outcome
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Stop the local Ray this pool started (nothing for a cluster it joined)."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
