"""Structured pruning and thinning across the architectures users bring, beside Torch-Pruning.

Coverage: each small-width test architecture (tests/architectures.py: written from the
public definitions, random weights, trained-looking BatchNorm statistics) is compressed
with StructurePrune(r) on its dependency groups and thinned, for r in {0.3, 0.5}. We
record whether it thinned, the relative output error against the masked model, and
the reduction of parameters and MACs. Torch-Pruning's MetaPruner (magnitude
importance, the same ratio per group, the classifier ignored) runs on the same model
beside it. Condensa's ratio is the fraction of the prunable layers' weights masked, ranked
globally across groups (default) or per group (`allocation="uniform"`, the same rule
as Torch-Pruning's); Torch-Pruning's ratio is the fraction of channels removed per
group. Transformers (ViT, BERT) add HeadPrune(r) to the channel scheme.

Speed: full-size ResNet-50, ConvNeXt-T and a BERT-base encoder (12 layers, 768 hidden,
12 heads; FFN neurons and attention heads pruned) at r = 0.3; dense, Condensa-thinned
and Torch-Pruning models timed in interleaved rounds on 2 threads (batch 32 for the
CNNs at 224x224, batch 8 x 128 tokens for BERT); speedup = median of per-round ratios.

Run: .venv/bin/python benchmarks/architectures.py [--rounds 5] [--skip-speed: keep the last speed rows]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from _report import markdown_table, update_docs, write_results
from torch import nn

import condensa
from condensa import schemes
from condensa.inputs import output_tensors, run_forward
from condensa.thinning import thin_report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import architectures as A  # noqa: E402


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _error(model: nn.Module, reference: nn.Module, x: Any) -> float:
    with torch.no_grad():
        a = output_tensors(run_forward(model.eval(), x))
        b = output_tensors(run_forward(reference.eval(), x))
    if len(a) != len(b) or any(p.shape != q.shape for p, q in zip(a, b, strict=True)):
        return float("inf")
    return max(
        float((p - q).abs().max()) / (1 + float(q.abs().max())) for p, q in zip(a, b, strict=True)
    )


def _scheme(name: str, ratio: float, allocation: str) -> condensa.schemes.Scheme:
    channels = schemes.StructurePrune(ratio, allocation=allocation)
    if name in ("bert", "bert_base", "vit", "distilbert", "hf_vit"):
        return schemes.Compose([channels, schemes.HeadPrune(ratio, allocation=allocation)])
    return channels


def condensa_thin(
    model: nn.Module, x: Any, name: str, ratio: float, allocation: str = "global"
) -> dict[str, Any]:
    """Compress on groups, thin, and measure against the masked model."""
    masked = condensa.compress(model, _scheme(name, ratio, allocation), x).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = thin_report(masked, x)
    return {
        "model": report.model,
        "error": _error(report.model, masked, x),
        "kept_groups": len(report.kept),
        "removed_groups": len(report.removed),
    }


def _heads(model: nn.Module) -> dict[nn.Module, int]:
    """Torch-Pruning's ``num_heads``: every q/k/v projection Condensa's layouts know."""
    from condensa.schemes.attention import ATTENTION

    out: dict[nn.Module, int] = {}
    for layout in ATTENTION.layouts(model):
        for fqn, _ in layout.projections:
            out[model.get_submodule(fqn)] = layout.heads
    return out


def _update_heads(model: nn.Module, pruner: Any) -> None:
    """Head counts after Torch-Pruning removed heads (its examples do this by hand)."""
    from condensa.schemes.attention import ATTENTION

    counts = getattr(pruner, "num_heads", {})
    for layout in ATTENTION.layouts(model):
        first = model.get_submodule(layout.projections[0][0])
        if first not in counts:
            continue
        heads = counts[first]
        attention = model.get_submodule(layout.module)
        for attr, kind in layout.counts:
            value = heads if kind == "heads" else first.out_features // layout.projections[0][1]
            setattr(attention, attr, value)


def torch_pruning(model: nn.Module, x: Any, ratio: float) -> dict[str, Any]:
    """Torch-Pruning's MetaPruner at ``ratio`` (None fields when it fails)."""
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    last = [m for m in pruned.modules() if isinstance(m, nn.Linear)][-1:]
    heads = _heads(pruned)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = tp.pruner.MetaPruner(
                pruned,
                x,
                importance=tp.importance.GroupMagnitudeImportance(p=2),
                pruning_ratio=ratio,
                ignored_layers=last,
                num_heads=heads,
                prune_head_dims=False,
                prune_num_heads=bool(heads),
                head_pruning_ratio=ratio,
                forward_fn=lambda m, inputs: sum(
                    t.sum() for t in output_tensors(run_forward(m, inputs))
                ),
            )
            pruner.step()
        _update_heads(pruned, pruner)
        with torch.no_grad():
            run_forward(pruned, x)
    except Exception as exc:  # reported in the table, not hidden
        return {"model": None, "failure": f"{type(exc).__name__}: {str(exc)[:80]}"}
    return {"model": pruned, "failure": ""}


def coverage(ratios: list[float]) -> list[dict[str, Any]]:
    records = []
    for name in A.ALL:
        if name == "lstm":
            continue
        model, x = A.build(name)
        dense_params, dense_macs = _params(model), condensa.stats(model, x).macs
        for ratio in ratios:
            row: dict[str, Any] = {"architecture": name, "ratio": ratio}
            for allocation in ("global", "uniform"):
                prefix = "" if allocation == "global" else "uniform_"
                try:
                    ours = condensa_thin(model, x, name, ratio, allocation)
                    row.update(
                        {
                            f"{prefix}thinned": True,
                            f"{prefix}error": ours["error"],
                            f"{prefix}params_x": dense_params / _params(ours["model"]),
                            f"{prefix}macs_x": dense_macs / condensa.stats(ours["model"], x).macs,
                            f"{prefix}kept_groups": ours["kept_groups"],
                        }
                    )
                except Exception as exc:
                    row[f"{prefix}thinned"] = False
                    row[f"{prefix}failure"] = f"{type(exc).__name__}: {str(exc)[:100]}"
            theirs = torch_pruning(model, x, ratio)
            if theirs["model"] is not None:
                row.update(
                    tp_params_x=dense_params / _params(theirs["model"]),
                    tp_macs_x=dense_macs / condensa.stats(theirs["model"], x).macs,
                )
            else:
                row["tp_failure"] = theirs["failure"]
            records.append(row)
            print(row, flush=True)
    return records


def _time(model: nn.Module, x: Any) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        run_forward(model, x)
    return time.perf_counter() - start


def speed(rounds: int, ratio: float) -> list[dict[str, Any]]:
    records = []
    for name in ("resnet50", "convnext_tiny", "bert_base"):
        model, x = A.build_full(name)
        masked_name = "bert" if name == "bert_base" else name
        ours = condensa_thin(model, x, masked_name, ratio)["model"].eval()
        theirs = torch_pruning(model, x, ratio)["model"]
        candidates = {"dense": model.eval(), "condensa": ours}
        if theirs is not None:
            candidates["torch-pruning"] = theirs.eval()
        for m in candidates.values():
            _time(m, x)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in candidates}
        for _ in range(rounds):
            for key, m in candidates.items():
                times[key].append(_time(m, x))
        dense_macs = condensa.stats(model, x).macs
        row: dict[str, Any] = {"architecture": name, "ratio": ratio}
        for key, m in candidates.items():
            if key == "dense":
                continue
            ratios = [d / t for d, t in zip(times["dense"], times[key], strict=True)]
            row[key] = {
                "macs_x": dense_macs / condensa.stats(m, x).macs,
                "speedup": statistics.median(ratios),
                "spread": [min(ratios), max(ratios)],
            }
        row["dense_s"] = statistics.median(times["dense"])
        records.append(row)
        print(row, flush=True)
    return records


def _previous_speed() -> list[dict[str, Any]]:
    """The speed records of the last full run (``--skip-speed`` keeps them)."""
    import json

    from _report import RESULTS

    path = RESULTS / "architectures.json"
    return json.loads(path.read_text()).get("speed", []) if path.exists() else []


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cover = coverage([0.3, 0.5])
    fast = _previous_speed() if args.skip_speed else speed(args.rounds, 0.3)
    write_results("architectures", {"coverage": cover, "speed": fast, "rounds": args.rounds})
    rows = [
        [
            r["architecture"],
            r["ratio"],
            "yes" if r.get("thinned") else f"no ({r.get('failure', '')})",
            _fmt(r.get("error"), ".1e"),
            _fmt(r.get("params_x")),
            _fmt(r.get("macs_x")),
            r.get("kept_groups", "—"),
            _fmt(r.get("uniform_macs_x")),
            _fmt(r.get("tp_params_x")) if "tp_params_x" in r else f"fails ({r['tp_failure']})",
            _fmt(r.get("tp_macs_x")),
        ]
        for r in cover
    ]
    body = __doc__.split("\n\n", 1)[1].split("Run:")[0] + (
        "Command: `.venv/bin/python benchmarks/architectures.py`. Results: "
        "`benchmarks/results/architectures.json`.\n\n"
    )
    body += markdown_table(
        [
            "model",
            "ratio",
            "thinned",
            "error",
            "params ×",
            "MACs ×",
            "groups kept",
            "MACs × (uniform)",
            "TP params ×",
            "TP MACs ×",
        ],  # fmt: skip
        rows,
    )
    if fast:
        body += "\n\n" + markdown_table(
            ["model (r=0.3)", "method", "MACs ×", "speedup (min–max)", "speedup / MACs"],
            [
                [
                    r["architecture"],
                    key,
                    _fmt(r[key]["macs_x"]),
                    f"{r[key]['speedup']:.2f} ({r[key]['spread'][0]:.2f}–{r[key]['spread'][1]:.2f})",
                    _fmt(r[key]["speedup"] / r[key]["macs_x"]),
                ]
                for r in fast
                for key in ("condensa", "torch-pruning")
                if key in r
            ],
        )
    update_docs("architectures", "Structured pruning across architectures", body)


if __name__ == "__main__":
    main()
