"""End to end on a CUDA device (skipped without one): the API and the CLI with --device cuda."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import condensa
from condensa import schemes
from condensa.cli import main
from condensa.optim import LC, SupervisedTrainer
from tests.cli.conftest import write_config
from tests.conftest import make_mlp

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _trainer() -> SupervisedTrainer:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 16, generator=g), torch.arange(4).repeat(32)
    data = TensorDataset(x, y)
    return SupervisedTrainer(DataLoader(data, batch_size=32), DataLoader(data, batch_size=64))


def test_lc_on_cuda_keeps_the_model_and_masks_on_the_device(tmp_path):
    """A CUDA model compresses on CUDA, saves, and loads back with the same outputs."""
    torch.manual_seed(0)
    model = make_mlp().cuda()
    result = LC(_trainer(), iterations=2, steps=5).compress(model, schemes.Prune(0.7))
    compressed = result.model
    assert all(p.is_cuda for p in compressed.parameters())
    assert all(m.is_cuda for m in condensa.masking.masks(compressed).values())
    path = condensa.save(compressed, tmp_path / "m.condensa")
    loaded = condensa.load(path, make_mlp()).cuda()
    x = torch.randn(4, 16, device="cuda")
    torch.testing.assert_close(loaded(x), compressed(x))


def test_cli_search_runs_on_cuda(tmp_path):
    """`condensa search --device cuda` completes and records the device it ran on."""
    config = write_config(tmp_path, objective="throughput")
    out = tmp_path / "out"
    assert main(["search", str(config), "--output", str(out), "--device", "cuda", "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"].startswith("cuda")
    assert summary["chosen"] is not None or summary["closest"] is not None
