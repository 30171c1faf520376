"""Processes and workers of a command: torchrun ranks, and the Ray pool of parallel trials.

Every rank runs the same command in lockstep (training is data-parallel, measurements
and proposals come from rank 0), so every rank needs a run directory with the same
contents: rank 0 claims and writes the real one; each other rank works in a private
copy of it in a temporary folder (the journal and baseline a resumed run reads),
deleted when the command ends. Nothing but rank 0 ever writes into ``--output``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from condensa.cli.rundir import INTERNAL, RunDir
from condensa.distributed import World, barrier, measured_on_main, process_group
from condensa.errors import ConfigError


@contextmanager
def joined(config: Mapping[str, Any], console: Console) -> Iterator[tuple[World, Console]]:
    """The command's world (one process unless under torchrun) and its console.

    Ranks other than 0 print nothing.
    """
    device = str(config.get("device") or "cpu")
    with process_group("cuda" if device.startswith("cuda") else "cpu") as world:
        yield world, (console if world.main else Console(quiet=True))


@contextmanager
def claimed(
    run: RunDir, config: Mapping[str, Any], *, force: bool
) -> Iterator[tuple[RunDir, bool]]:
    """The rank's run directory, claimed, and whether an earlier run is resumed.

    Rank 0 claims ``run`` itself (its errors are raised on every rank); the others
    then copy it, lock files aside, into a scratch folder and claim that.
    """
    world = World.current()
    resumed = measured_on_main(run.claim)(config, force=force)
    mine, scratch = run, None
    try:
        if not world.main:
            scratch = tempfile.mkdtemp(prefix=f"condensa-rank{world.rank}-")
            copy = Path(scratch) / "run"
            shutil.copytree(run.path, copy, ignore=shutil.ignore_patterns(*INTERNAL))
            mine = RunDir(copy)
            mine.claim(config, force=True)
        barrier(world)  # rank 0 writes nothing more until every copy is taken
        yield mine, resumed
    finally:
        mine.release()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def trial_pool(config: Mapping[str, Any]) -> Iterator[Any]:
    """The pool of ``search.workers`` trials at once: None (serial) or a Ray pool.

    A ``search.ray_address`` joins that cluster (with one worker, trials still run there
    one at a time); otherwise more than one worker starts a local Ray, stopped at the
    end. Each trial declares ``threads`` CPUs and ``search.gpus_per_trial`` GPUs.

    Raises:
        ConfigError: Ray is not installed, or parallel trials are asked for under
            torchrun (use one or the other).

    """
    search = config["search"]
    if search["workers"] == 1 and not search["ray_address"]:
        yield None
        return
    if World.current().distributed:
        raise ConfigError(
            f"search.workers = {search['workers']} (parallel trials on Ray) cannot be combined "
            "with a data-parallel torchrun launch; use one or the other"
        )
    from condensa.search.ray_pool import RayPool

    with RayPool(
        search["workers"],
        address=search["ray_address"] or None,
        cpus_per_trial=config["threads"],
        gpus_per_trial=search["gpus_per_trial"],
    ) as pool:
        yield pool
