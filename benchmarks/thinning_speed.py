"""Do thinned models really run faster? Measured throughput vs the MACs reduction.

VGG-19-BN and ResNet-56 (32x32 inputs, random weights: speed does not depend on
training) are compressed with FilterPrune(s) for s in {0.3, 0.5, 0.72, 0.9}, thinned
with condensa.thin, and timed against the dense model at batch 64 and batch 1 on 2
threads. Timings are interleaved (dense, thinned, Torch-Pruning, dense, ...) so that
machine noise hits all alike; we report medians of the per-round ratios with their
interquartile range. Torch-Pruning (a reference, benchmark extra only) removes the
same channels from the same model through its dependency graph.

Run: .venv/bin/python benchmarks/thinning_speed.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from _report import markdown_table, median_iqr, update_docs, write_results
from torch import nn

import condensa
from condensa import schemes, zoo

MODELS = {"VGG-19-BN": lambda: zoo.VGG(19), "ResNet-56": lambda: zoo.ResNet(56)}


def _time(model: nn.Module, batch: torch.Tensor) -> float:
    start = time.perf_counter()
    model(batch)
    return time.perf_counter() - start


def torch_pruning_copy(
    dense: nn.Module, thinned: nn.Module, example: torch.Tensor
) -> nn.Module | None:
    """Torch-Pruning removing the channels condensa removed (same count per conv)."""
    try:
        import torch_pruning as tp
    except ImportError:
        return None
    model = copy.deepcopy(dense).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    thin_modules = dict(thinned.named_modules())
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Conv2d) and name in thin_modules:
            # the channels condensa removed: its zero filters, when it removed all of them
            removed = [
                c
                for c in range(module.out_channels)
                if bool((dense.get_submodule(name).weight[c] == 0).all())
            ]
            shrink = module.out_channels - thin_modules[name].out_channels
            if removed and shrink == len(removed) and len(removed) < module.out_channels:
                group = graph.get_pruning_group(module, tp.prune_conv_out_channels, idxs=removed)
                if graph.check_pruning_group(group):
                    group.prune()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.3, 0.5, 0.72, 0.9])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows, records = [], []
    for model_name, make in MODELS.items():
        dense = make().eval()
        example = torch.randn(1, 3, 32, 32)
        dense_macs = condensa.stats(dense, example).macs
        for s in args.sparsities:
            masked = condensa.compress(dense, schemes.FilterPrune(s), example).eval()
            thinned = condensa.thin(masked, example).eval()
            baked = condensa.masking.bake(masked).eval()
            reference = torch_pruning_copy(baked, thinned, example)
            thin_macs = condensa.stats(thinned, example).macs
            macs_ratio = dense_macs / thin_macs
            for batch_size in (64, 1):
                batch = torch.randn(batch_size, 3, 32, 32)
                ratios, tp_ratios, dense_times = [], [], []
                with torch.inference_mode():
                    for model in (dense, thinned) + ((reference,) if reference else ()):
                        for _ in range(3):
                            model(batch)  # warm-up
                    for _ in range(args.repeats):
                        t_dense = _time(dense, batch)
                        t_thin = _time(thinned, batch)
                        dense_times.append(t_dense)
                        ratios.append(t_dense / t_thin)
                        if reference is not None:
                            tp_ratios.append(t_dense / _time(reference, batch))
                speedup, spread = median_iqr(ratios)
                tp_speedup = statistics.median(tp_ratios) if tp_ratios else float("nan")
                record = {
                    "model": model_name,
                    "sparsity": s,
                    "batch": batch_size,
                    "params_dense": sum(p.numel() for p in dense.parameters()),
                    "params_thinned": sum(p.numel() for p in thinned.parameters()),
                    "macs_ratio": macs_ratio,
                    "speedup": speedup,
                    "speedup_iqr": spread,
                    "speedup_over_macs": speedup / macs_ratio,
                    "torch_pruning_speedup": tp_speedup,
                    "dense_ms_median": 1000 * statistics.median(dense_times),
                    "ratios": ratios,
                }
                records.append(record)
                rows.append(
                    [
                        model_name,
                        s,
                        batch_size,
                        f"{macs_ratio:.2f}x",
                        f"{speedup:.2f}x ± {spread / 2:.2f}",
                        f"{speedup / macs_ratio:.2f}",
                        f"{tp_speedup:.2f}x",
                        f"{record['dense_ms_median']:.1f}",
                    ]
                )
                print(rows[-1], flush=True)
    path = write_results(
        "thinning_speed", {"repeats": args.repeats, "threads": args.threads, "results": records}
    )
    body = (
        f"Random weights, group-aware FilterPrune(s) (dependency groups from the example "
        "input, global ranking), thinned with `condensa.thin`; "
        f"{args.threads} threads, {args.repeats} interleaved rounds after 3 warm-ups; speedup = "
        "median over rounds of dense time / thinned time (± half the IQR). `speedup/MACs` is "
        "the fraction of the MACs reduction that became real speed. Torch-Pruning removes the "
        "same channels (reference). ResNet-56: channels on the residual path go as whole "
        "groups (every block of a stage writes them). Target: speedup ≥ 0.8 × MACs reduction for "
        f"VGG-19 at batch 64. Command: `.venv/bin/python benchmarks/thinning_speed.py`. "
        f"Results: `{path.name}`.\n\n"
        + markdown_table(
            [
                "model",
                "sparsity",
                "batch",
                "MACs reduction",
                "measured speedup",
                "speedup/MACs",
                "Torch-Pruning",
                "dense ms",
            ],
            rows,
        )
    )
    update_docs("thinning_speed", "Thinning: measured speedups vs MACs", body)
    print(body)


if __name__ == "__main__":
    main()
