"""Real int8 inference of Linear layers on CPU: float32 vs torch dynamic int8 vs torchao.

Models: LeNet-300-100 (MNIST-size MLP) and a wide MLP (3 x 2048) whose Linear layers
dominate; batch 64, 2 threads. Each round times every backend (interleaved), 7 rounds of
30 forward passes; medians and IQR of the per-pass times. Also the largest output
difference against float32 and the agreement of the argmax (random weights and inputs).

    python benchmarks/int8_linear.py          (torchao is measured when installed)
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
import warnings

import torch
from _report import markdown_table, update_docs, write_results
from torch import nn

from condensa.errors import CondensaError
from condensa.quantized import int8_inference
from condensa.zoo import LeNet300100

ROUNDS, PASSES, BATCH = 7, 30, 64


def _models() -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    wide = nn.Sequential(
        nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10)
    )
    return {
        "LeNet-300-100": (LeNet300100().eval(), torch.rand(BATCH, 1, 28, 28)),
        "MLP 3x2048": (wide.eval(), torch.randn(BATCH, 2048)),
    }


def _time(model: nn.Module, x: torch.Tensor) -> list[float]:
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        out = []
        for _ in range(PASSES):
            start = time.perf_counter()
            model(x)
            out.append(time.perf_counter() - start)
    return out


def main() -> int:
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    rows, results = [], {}
    for name, (model, x) in _models().items():
        variants = {"float32": model, "int8 (torch)": int8_inference(model, x)}
        with contextlib.suppress(CondensaError):  # measured when torchao is installed
            variants["int8 (torchao)"] = int8_inference(model, x, backend="torchao")
        samples: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(ROUNDS):
            for key, variant in variants.items():
                samples[key] += _time(variant, x)
        with torch.inference_mode():
            reference = model(x)
            outputs = {k: v(x) for k, v in variants.items()}
        base = statistics.median(samples["float32"])
        results[name] = {}
        for key, times in samples.items():
            q = statistics.quantiles(times, n=4)
            err = float((outputs[key] - reference).abs().max() / reference.abs().max())
            agree = float(outputs[key].argmax(1).eq(reference.argmax(1)).float().mean())
            results[name][key] = {
                "median_ms": statistics.median(times) * 1e3,
                "iqr_ms": (q[2] - q[0]) * 1e3,
                "speedup": base / statistics.median(times),
                "max_rel_error": err,
                "argmax_agreement": agree,
            }
            r = results[name][key]
            rows.append(
                [
                    name,
                    key,
                    f"{r['median_ms']:.2f} ± {r['iqr_ms'] / 2:.2f}",
                    f"{r['speedup']:.2f}x",
                    f"{err:.3%}",
                    f"{agree:.0%}",
                ]
            )
    write_results(
        "int8_linear", {"rounds": ROUNDS, "passes": PASSES, "batch": BATCH, "results": results}
    )
    table = markdown_table(
        [
            "model",
            "backend",
            "ms per batch (median ± IQR/2)",
            "speedup",
            "max abs error / max abs output",
            "same argmax",
        ],
        rows,
    )
    update_docs(
        "int8_linear",
        "Real int8 Linear inference on CPU",
        "`python benchmarks/int8_linear.py`: `condensa.quantized.int8_inference` (thinned model, "
        f"Linear layers in int8, activations quantized per batch); batch {BATCH}, 2 threads, "
        f"{ROUNDS} interleaved rounds of {PASSES} passes.\n\n"
        + table
        + "\n\nReading: the torch backend (fbgemm kernels) is the fast CPU path; torchao's eager "
        "int8 path on CPU is slower than float32 here (its fast kernels target GPUs or need "
        "`torch.compile`), so it is offered for completeness, not speed.",
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
