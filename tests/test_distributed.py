"""Data-parallel training on torch.distributed (gloo, CPU): same answer as one process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from condensa import ConfigError, schemes
from condensa.distributed import (
    World,
    all_reduce_sums,
    evaluation_shard,
    from_main,
    measured_on_main,
    process_group,
    shard_loader,
)
from condensa.optim import GMP, LC, Distillation, FineTune, SupervisedTrainer, sgd
from tests.conftest import make_mlp

METHODS = ("lc", "gmp-distill", "finetune")


def _data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 16, generator=g) * 2
    labels = torch.arange(4).repeat(n // 4)
    return TensorDataset(centers[labels] + torch.randn(n, 16, generator=g), labels)


def _method(name: str, trainer: SupervisedTrainer) -> Any:
    if name == "lc":
        return LC(trainer, iterations=3, steps=8, mu_init=1e-2)
    if name == "gmp-distill":
        return GMP(trainer, steps=24, distill=Distillation(temperature=2.0, weight=0.5))
    return FineTune(trainer, steps=16)


def _compress_all() -> dict[str, Any]:
    """Train a tiny MLP, then compress it with each method; states and metrics."""
    torch.manual_seed(0)
    loader = shard_loader(DataLoader(_data(128, 0), batch_size=32), seed=1)
    val = DataLoader(_data(100, 1), batch_size=16)
    trainer = SupervisedTrainer(loader, val, lr=0.05, optimizer=sgd)
    model = make_mlp()
    trainer.train(model, 12)
    out: dict[str, Any] = {}
    for name in METHODS:
        result = _method(name, trainer).compress(model, schemes.Prune(0.7))
        out[name] = {
            "state": {k: v.detach().clone() for k, v in result.model.state_dict().items()},
            "metrics": trainer.evaluate(result.model),
        }
    return out


def _worker(rank: int, size: int, init: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init}", rank=rank, world_size=size
    )
    try:
        world = World.current()
        record = _compress_all()
        record["world"] = world.to_dict()
        record["agreed"] = from_main(f"rank {rank}")
        record["measured"] = measured_on_main(lambda: World.current().rank)()
        record["sums"] = all_reduce_sums({"one": 1.0}, world, torch.device("cpu"))
        torch.save(record, Path(out) / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The records of a 2-process gloo run of :func:`_compress_all`."""
    folder = tmp_path_factory.mktemp("ddp")
    torch.multiprocessing.start_processes(
        _worker,
        args=(2, str(folder / "init"), str(folder)),
        nprocs=2,
        start_method="spawn",
    )
    return [torch.load(folder / f"rank{r}.pt") for r in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_processes_give_the_one_process_model(two_ranks, method):
    """Same global batch and seed: 2 gloo ranks compress to the 1-process model (float tol)."""
    single = _compress_all()[method]
    ddp = two_ranks[0][method]
    assert set(ddp["state"]) == set(single["state"])
    for key, value in single["state"].items():
        torch.testing.assert_close(ddp["state"][key], value, atol=2e-4, rtol=1e-3, msg=key)
    assert ddp["metrics"]["accuracy"] == pytest.approx(single["metrics"]["accuracy"], abs=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_rank_holds_the_same_compressed_model_and_metrics(two_ranks, method):
    """After the C steps and mask updates, θ and masks are identical on every rank."""
    first, second = (record[method] for record in two_ranks)
    for key, value in first["state"].items():
        assert torch.equal(second["state"][key], value), key
    assert first["metrics"] == second["metrics"]


@pytest.mark.slow
def test_collectives_agree_on_rank_zero(two_ranks):
    """from_main and measured_on_main give rank 0's value everywhere; sums add up."""
    assert [r["agreed"] for r in two_ranks] == ["rank 0", "rank 0"]
    assert [r["measured"] for r in two_ranks] == [0, 0]
    assert [r["sums"] for r in two_ranks] == [{"one": 2.0}, {"one": 2.0}]
    assert [r["world"]["world_size"] for r in two_ranks] == [2, 2]
    assert two_ranks[0]["world"]["backend"] == "gloo"


def test_one_process_world_is_the_identity():
    """Without a process group: rank 0 of 1, and every helper passes values through."""
    world = World.current()
    assert (world.rank, world.size, world.main, world.distributed) == (0, 1, True, False)
    assert from_main(3) == 3
    assert measured_on_main(lambda x: x + 1)(1) == 2
    loader = DataLoader(_data(8, 0), batch_size=4)
    assert evaluation_shard(loader, world) is loader
    assert all_reduce_sums({"a": 1.5}, world, torch.device("cpu")) == {"a": 1.5}


def test_shard_loader_keeps_the_global_batch_and_reshuffles_each_pass():
    """One process: batches of the global size, a permutation per pass, all samples."""
    loader = shard_loader(DataLoader(_data(16, 0), batch_size=4), seed=3)
    trainer_passes = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        trainer_passes.append(list(iter(loader.sampler)))
    assert all(sorted(p) == list(range(16)) for p in trainer_passes)
    assert trainer_passes[0] != trainer_passes[1]
    assert loader.batch_size == 4


def test_shard_loader_refuses_a_batch_it_cannot_split(monkeypatch):
    """A batch size not divisible by the world size is refused, naming both."""
    monkeypatch.setattr(World, "current", classmethod(lambda cls: World(0, 3)))
    with pytest.raises(ConfigError, match="batch_size = 4 is not divisible by the 3"):
        shard_loader(DataLoader(_data(16, 0), batch_size=4), seed=0)


def test_process_group_without_a_launcher_changes_nothing(monkeypatch):
    """Outside torchrun the block runs as one process; a bad device type is refused."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with process_group("cpu") as world:
        assert world == World()
        assert not torch.distributed.is_initialized()
    with (
        pytest.raises(ConfigError, match="'tpu' is not supported; valid: cpu, cuda"),
        process_group("tpu"),
    ):
        pass
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE = 'two'"), process_group("cpu"):
        pass


def test_a_failed_rank_is_reported_with_the_way_to_resume():
    """A collective that fails because another rank died gets a clear message, exit code 1."""
    from condensa.cli.main import _error_message

    error = torch.distributed.DistBackendError("Connection closed by peer [127.0.0.1]:29500")
    message, code = _error_message(error)
    assert code == 1
    assert message.startswith("another process of this torchrun launch failed")
    assert "Connection closed by peer" in message and "run the same command again" in message
