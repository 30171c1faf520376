"""Trials on Ray workers: a local Ray with N workers, or an existing cluster.

Needs the ``condensa[ray]`` extra. Each worker is a Ray actor declaring
``cpus_per_trial`` CPUs (its torch threads) and ``gpus_per_trial`` GPUs, and runs one
trial at a time. The function ``evaluate`` is shipped to each worker once (pickled by
Ray): it must not rely on state kept in the driver, and any files it writes (trial
models) must be on storage the driver reads too (any path on one machine; a shared
file system on a cluster).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from condensa.errors import CondensaError, ConfigError, check_int
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


class _Worker:
    """One trial worker (a Ray actor): holds ``evaluate`` so it is shipped once per search."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.evaluate: Callable[[Point], Any] | None = None

    def hold(self, evaluate: Callable[[Point], Any]) -> None:
        """Keep ``evaluate`` for the following calls."""
        self.evaluate = evaluate

    def run(self, point: Point) -> Outcome:
        """One trial, timed (see :func:`~condensa.search.pool.call`)."""
        assert self.evaluate is not None
        return call(self.evaluate, point)


CONNECT_TIMEOUT_S = 30.0
"""Seconds to wait for a Ray address to answer before giving up (``connect_timeout_s``)."""
MAX_WORKERS = 1024
"""Most trials at once on a cluster; a local Ray is bounded by 4 workers per CPU."""


def check_workers(workers: int, address: str | None, cpus_per_trial: float) -> None:
    """Refuse more workers than a cluster (or, locally, this machine) could hold.

    Raises:
        ConfigError: too many (the limit and why named).

    """
    if workers > MAX_WORKERS:
        raise ConfigError(f"workers = {workers:,}: at most {MAX_WORKERS} trials at once")
    cpus = os.cpu_count() or 1
    if address is None and workers * max(cpus_per_trial, 1.0) > 4 * cpus:
        raise ConfigError(
            f"workers = {workers:,} with {cpus_per_trial:g} CPU(s) each on a local Ray: this "
            f"machine has {cpus} CPUs (at most 4 per CPU); lower workers or join a cluster"
        )


def check_address(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address to probe, None for a local or ``"auto"`` Ray.

    Valid: None, ``"auto"``, ``"local"``, ``"host:port"``, ``"ray://host:port"``.

    Raises:
        ConfigError: any other text (the valid forms named).

    """
    if address is None or address in ("auto", "local"):
        return None
    text = address.removeprefix("ray://") if isinstance(address, str) else ""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise ConfigError(
            f"Ray address {address!r} is not valid; give 'auto', 'host:port' (a cluster's "
            "GCS address) or 'ray://host:port' (a Ray client server)"
        )
    return host.strip("[]"), int(port)


def _probe(address: str | None, endpoint: tuple[str, int], timeout_s: float) -> None:
    """Refuse an address nothing answers at within ``timeout_s`` (before any work is done)."""
    try:
        with socket.create_connection(endpoint, timeout=timeout_s):
            pass
    except OSError as exc:
        raise CondensaError(
            f"nothing answers at the Ray address {address!r} (waited up to {timeout_s:g} s: "
            f"{exc.strerror or exc}); start the cluster, or check the address"
        ) from None


class RayPool:
    """Runs the trials of a round on Ray: one worker (actor) per trial slot.

    Each worker is a Ray actor declaring the trial's resources; the evaluation function
    is shipped to each worker once (again only when a different one is given), so a
    search's data and model are not serialized for every trial.

    Args:
        workers: trials at once (the points proposed per round).
        address: an existing cluster's address (``"auto"``, ``"ray://host:10001"``);
            None starts a local Ray sized for ``workers`` trials, stopped by
            :meth:`close`.
        cpus_per_trial: CPUs each worker declares (and its torch threads).
        gpus_per_trial: GPUs each worker declares (may be fractional).
        connect_timeout_s: how long a cluster's address may take to answer.

    Raises:
        ConfigError: Ray is not installed, a malformed address, or a bad number of
            workers or resources.
        CondensaError: nothing answers at the address, or Ray fails to start or join.

    """

    def __init__(
        self,
        workers: int,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        check_int("workers", workers)
        for name, value in (("cpus_per_trial", cpus_per_trial), ("gpus_per_trial", gpus_per_trial)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        check_workers(workers, address, cpus_per_trial)
        endpoint = check_address(address)
        ray = _ray()
        if endpoint is not None and not ray.is_initialized():
            _probe(address, endpoint, connect_timeout_s)
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
            try:
                ray.init(address=address, **options)
            except Exception as exc:  # noqa: BLE001 - Ray's own error types, named
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                where = "start a local Ray" if address is None else f"join Ray at {address!r}"
                raise CondensaError(f"cannot {where}: {type(exc).__name__}: {first}") from None
        self._actor = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial)(_Worker)
        self._threads = max(1, math.floor(cpus_per_trial))
        self._workers: list[Any] = []
        self._holding: Any = None

    def _ready(self, evaluate: Callable[[Point], Any]) -> list[Any]:
        """The workers, (re)started where needed, each holding ``evaluate``."""
        ray = self._ray
        self._workers += [None] * (self.workers - len(self._workers))
        for i, worker in enumerate(self._workers):
            if worker is None:  # new, or replacing one that died: holds nothing yet
                self._workers[i] = self._actor.remote(self._threads)
                self._holding = None
        if self._holding is not evaluate:
            shared = ray.put(evaluate)
            ray.get([w.hold.remote(shared) for w in self._workers])
            self._holding = evaluate
        return list(self._workers)

    def run(
        self, evaluate: Callable[[Point], Any], points: Sequence[Point]
    ) -> Iterator[tuple[int, Outcome]]:
        """Give each worker its share of ``points``; yield outcomes in completion order.

        A trial whose worker died is yielded with Ray's error (the search treats it as a
        failure of the environment and stops; the worker is replaced
        for the next round); closing the generator early (the driver stops) cancels the
        trials not started yet.
        """
        ray = self._ray
        workers = self._ready(evaluate)
        pending = {}
        for i, point in enumerate(points):
            pending[workers[i % len(workers)].run.remote(point)] = (i, i % len(workers))
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                position, worker = pending.pop(done[0])
                try:
                    outcome = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - the search decides what it means
                    outcome = Outcome(None, exc, math.nan)
                    self._workers[worker] = None  # replaced before the next round
                yield position, outcome
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        """Stop the local Ray this pool started (nothing for a cluster it joined)."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
