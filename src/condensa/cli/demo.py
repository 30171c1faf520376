"""`condensa demo`: train a small CNN on digits, compress it two ways, show the gains."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

import condensa
from condensa import schemes
from condensa.data import load_digits
from condensa.optim import FineTune, SupervisedTrainer
from condensa.zoo import DigitsCNN


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo run."""

    epochs: int = 15
    finetune_epochs: int = 5
    batch_size: int = 64
    seed: int = 0
    threads: int = 2


def run_demo(config: DemoConfig, console: Console) -> dict[str, dict[str, float]]:
    """Train, compress with two schemes, fine-tune with masks, print tables.

    Returns:
        ``{scheme name: {"dc_accuracy", "ft_accuracy", "sparsity", "compression_ratio"}}``.

    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    train_set, test_set = load_digits(seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        train_set, batch_size=config.batch_size, shuffle=True, generator=generator
    )
    trainer = SupervisedTrainer(
        train_loader, DataLoader(test_set, batch_size=256), lr=3e-3, schedule="cosine"
    )
    steps_per_epoch = len(train_loader)
    model = DigitsCNN()
    trainer.train(model, config.epochs * steps_per_epoch)
    baseline = trainer.evaluate(model)["accuracy"]
    console.print(
        f"[bold]Baseline[/bold] DigitsCNN on scikit-learn digits: test accuracy "
        f"{baseline:.2%} ({len(train_set)} train / {len(test_set)} test images, "
        f"{time.perf_counter() - start:.1f}s)"
    )
    strategies = {
        'Compose([Prune(0.9), Quantize("float16")])': schemes.Compose(
            [schemes.Prune(0.9), schemes.Quantize("float16")]
        ),
        "FilterPrune(0.5)": schemes.FilterPrune(0.5),
    }
    results: dict[str, dict[str, float]] = {}
    summary = Table(title="Compression summary")
    for column in ("scheme", "accuracy DC", "after fine-tune", "sparsity", "compression", "MACs"):
        summary.add_column(column, justify="left" if column == "scheme" else "right")
    dense_stats = condensa.stats(model, input_size=(1, 1, 8, 8))
    for name, scheme in strategies.items():
        steps = config.finetune_epochs * steps_per_epoch
        result = FineTune(trainer, steps=steps, finetune_lr_scale=0.3).compress(model, scheme)
        compressed = result.model
        dc_accuracy = result.history[0]["val_accuracy"]
        ft_accuracy = trainer.evaluate(compressed)["accuracy"]
        st = condensa.stats(compressed, input_size=(1, 1, 8, 8))
        console.print(f"\n[bold]{name}[/bold]")
        console.print(st.rich_table())
        assert dense_stats.macs and st.effective_macs  # measured with input_size
        results[name] = {
            "dc_accuracy": dc_accuracy,
            "ft_accuracy": ft_accuracy,
            "sparsity": st.sparsity,
            "compression_ratio": st.compression_ratio,
            "macs_ratio": dense_stats.macs / st.effective_macs,
        }
        summary.add_row(
            name,
            f"{dc_accuracy:.2%}",
            f"{ft_accuracy:.2%}",
            f"{st.sparsity:.3f}",
            f"{st.compression_ratio:.1f}x",
            f"{dense_stats.macs / st.effective_macs:.2f}x fewer",
        )
    console.print()
    console.print(f"Baseline accuracy {baseline:.2%}")
    console.print(summary)
    console.print(
        "compression = dense float32 bytes / ideal compressed bytes (non-zeros x value bytes); "
        "MACs counted without all-zero filters and neurons.\n"
        f"Done in {time.perf_counter() - start:.1f}s."
    )
    return results
