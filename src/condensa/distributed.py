"""Data-parallel runs on torch.distributed: the process group, sharded data, agreed values.

Condensa does not keep a process group of its own: it reads torch's (set up by
:func:`process_group` under ``torchrun``, or by the user's own
``torch.distributed.init_process_group``). With more than one process, the built-in
trainers wrap the model in :class:`~torch.nn.parallel.DistributedDataParallel` for
each ``train`` call (gradients are averaged across ranks, so every rank holds the
same weights after each step), evaluate their shard of the validation data and
all-reduce the sums, and everything that must agree across ranks but is measured
locally (throughput, a search's proposal) is taken from rank 0 with :func:`from_main`.

Example (from Python, one process per rank under torchrun)::

    with condensa.distributed.process_group("cpu") as world:
        loader = condensa.distributed.shard_loader(loader, seed=0)
        ...  # build the trainer and compress as usual; only world.main writes files

"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from condensa.errors import ConfigError

T = TypeVar("T")

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
"""The process-group backend used for each device type."""


@dataclass(frozen=True)
class World:
    """The processes of a run: this one's rank among ``size``, and the backend."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        """True on rank 0, the only rank that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when there is more than one process."""
        return self.size > 1

    @classmethod
    def current(cls) -> World:
        """The world of torch's default process group (one process when there is none)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return cls()
        return cls(
            torch.distributed.get_rank(),
            torch.distributed.get_world_size(),
            int(os.environ.get("LOCAL_RANK", torch.distributed.get_rank())),
            str(torch.distributed.get_backend()),
        )

    def to_dict(self) -> dict[str, Any]:
        """``world_size``, ``rank`` and ``backend``, for run records."""
        return {"world_size": self.size, "rank": self.rank, "backend": self.backend}


def launched() -> bool:
    """True when this process was started by torchrun (or alike) as one of several."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        raise ConfigError(f"WORLD_SIZE = {os.environ['WORLD_SIZE']!r} is not an integer") from None


@contextmanager
def process_group(device_type: str = "cpu", *, timeout_s: float = 1800.0) -> Iterator[World]:
    """Join the launcher's process group for the block, and leave it afterwards.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), initializes torch's
    default process group with gloo on CPU and NCCL on CUDA (each rank then uses
    ``cuda:LOCAL_RANK``); otherwise, or when a group already exists, changes nothing.
    A rank that fails or stops answering makes the others fail in their next
    collective (after at most ``timeout_s``) rather than hang.

    Raises:
        ConfigError: ``device_type`` is neither cpu nor cuda.

    """
    if device_type not in BACKENDS:
        raise ConfigError(f"device type {device_type!r} is not supported; valid: cpu, cuda")
    if not launched() or torch.distributed.is_initialized():
        yield World.current()
        return
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(
        BACKENDS[device_type], timeout=timedelta(seconds=timeout_s)
    )
    try:
        yield World.current()
    finally:
        torch.distributed.destroy_process_group()


def shard_loader(loader: DataLoader[Any], *, seed: int, shuffle: bool = True) -> DataLoader[Any]:
    """The current rank's part of a training loader, at the same global batch size.

    The dataset is permuted with ``seed`` (a new permutation every pass) and dealt out
    across ranks; each rank reads ``batch_size / world size`` samples per step, so the
    union of one step's batches over all ranks is the batch a single process reading
    the returned loader with one rank would see. Use it with one process too (world
    size 1) to get the same global batches as a data-parallel run.

    Raises:
        ConfigError: the loader has no batch size, or it is not divisible by the
            number of processes.

    """
    world = World.current()
    size = loader.batch_size
    if size is None:
        raise ConfigError("shard_loader needs a loader with a batch_size (not a batch_sampler)")
    if size % world.size:
        raise ConfigError(
            f"batch_size = {size} is not divisible by the {world.size} processes; "
            f"use a multiple of {world.size}"
        )
    sampler: DistributedSampler[Any] = DistributedSampler(
        loader.dataset,
        num_replicas=world.size,
        rank=world.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=True,
    )
    return DataLoader(
        loader.dataset,
        batch_size=size // world.size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
    )


class EvaluationShard(Sampler[int]):
    """Indices ``rank, rank + size, ...`` of a dataset: every sample on exactly one rank."""

    def __init__(self, length: int, world: World) -> None:
        self.indices = range(world.rank, length, world.size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def evaluation_shard(loader: Any, world: World) -> Any:
    """The current rank's share of an evaluation loader (the loader itself with one process).

    Only a :class:`~torch.utils.data.DataLoader` over a sized dataset can be split;
    any other iterable is evaluated whole on every rank (correct, just not faster).
    """
    if not world.distributed or not isinstance(loader, DataLoader):
        return loader
    try:
        length = len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        return loader
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=EvaluationShard(length, world),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
    )


def all_reduce_sums(
    sums: Mapping[str, float], world: World, device: torch.device
) -> dict[str, float]:
    """The sums over all ranks of per-rank sums (the same keys on every rank)."""
    if not world.distributed:
        return dict(sums)
    keys = sorted(sums)
    values = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    return dict(zip(keys, values.tolist(), strict=True))


def from_main(value: T, world: World | None = None) -> T:
    """Rank 0's ``value`` on every rank (pickled through the process group)."""
    world = World.current() if world is None else world
    if not world.distributed:
        return value
    box: list[Any] = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return cast(T, box[0])


def measured_on_main(function: Callable[..., T]) -> Callable[..., T]:
    """``function`` run on rank 0 only, its result (or its error) shared with every rank.

    For measurements that differ across ranks or would disturb each other when taken
    side by side (wall-clock throughput): the other ranks wait for rank 0's value.
    """

    def run(*args: Any, **kwargs: Any) -> T:
        world = World.current()
        if not world.distributed:
            return function(*args, **kwargs)
        outcome: tuple[Any, BaseException | None] = (None, None)
        if world.main:
            try:
                outcome = (function(*args, **kwargs), None)
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                outcome = (None, exc)
        value, error = from_main(outcome, world)
        if error is not None:
            raise error
        return cast(T, value)

    return run


def data_parallel(model: nn.Module, world: World) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel (the model itself with one process)."""
    if not world.distributed:
        return model
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


@torch.no_grad()
def sync_buffers(model: nn.Module, world: World) -> None:
    """Copy rank 0's buffers (BatchNorm statistics, masks) to every rank."""
    if world.distributed:
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, src=0)


def barrier(world: World) -> None:
    """Wait until every rank gets here (nothing with one process)."""
    if world.distributed:
        torch.distributed.barrier()
