"""Bytes on disk: real file vs ideal non-zero bytes vs dense, against the entropy bound.

LeNet-300-100 and VGG-19 (random weights; sizes do not depend on training) are pruned
with Prune(s) for s in {0.5, 0.9, 0.98} and stored as float32, float16 or int8 values.
The lower bound for storing positions and values is ``non-zero value bytes +
numel x H(1 - s) / 8`` (H: binary entropy). We also report what a plain bitmask
index would cost, to justify the encoding choice (Golomb-Rice gap codes).

Run: .venv/bin/python benchmarks/storage.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from _report import markdown_table, update_docs, write_results

import condensa
from condensa import schemes, zoo
from condensa.functional.encoding import entropy_bits
from condensa.masking import masks

MODELS = {"LeNet-300-100": lambda: zoo.LeNet300100(), "VGG-19": lambda: zoo.VGG(19)}
DTYPES = {"fp32": None, "fp16": "float16", "int8": "int8"}


def main() -> None:
    torch.manual_seed(0)
    rows, records = [], []
    for model_name, make in MODELS.items():
        model = make()
        for sparsity in (0.5, 0.9, 0.98):
            for dtype_name, dtype in DTYPES.items():
                parts = [schemes.Prune(sparsity)] + ([schemes.Quantize(dtype)] if dtype else [])
                compressed = condensa.compress(model, schemes.Compose(parts))
                stats = condensa.stats(compressed)
                with tempfile.TemporaryDirectory() as folder:
                    path = condensa.save(compressed, Path(folder) / "m.condensa")
                    file_bytes = path.stat().st_size
                index_bound = (
                    sum(entropy_bits(m.numel(), int(m.sum())) for m in masks(compressed).values())
                    / 8
                )
                bitmask = sum((m.numel() + 7) // 8 for m in masks(compressed).values())
                # buffers (BatchNorm statistics) must be stored too: count them densely
                buffers = sum(
                    b.numel() * b.element_size()
                    for b in compressed.buffers()
                    if b.dtype != torch.bool
                )
                bound = stats.compressed_bytes + buffers + index_bound
                record = {
                    "model": model_name,
                    "sparsity": sparsity,
                    "values": dtype_name,
                    "file_bytes": file_bytes,
                    "ideal_nonzero_bytes": stats.compressed_bytes,
                    "dense_bytes": stats.dense_bytes,
                    "entropy_bound_bytes": bound,
                    "index_overhead_bytes": file_bytes - stats.compressed_bytes,
                    "buffer_bytes": buffers,
                    "bitmask_file_estimate": stats.compressed_bytes + buffers + bitmask,
                    "file_over_bound": file_bytes / bound,
                    "compression_ratio": stats.dense_bytes / file_bytes,
                }
                records.append(record)
                rows.append(
                    [
                        model_name,
                        sparsity,
                        dtype_name,
                        f"{file_bytes:,}",
                        f"{stats.compressed_bytes:,}",
                        f"{stats.dense_bytes:,}",
                        f"{bound:,.0f}",
                        f"{record['file_over_bound']:.3f}",
                        f"{record['bitmask_file_estimate'] / bound:.3f}",
                        f"{record['compression_ratio']:.1f}x",
                    ]
                )
                print(rows[-1], flush=True)
    path = write_results("storage", {"results": records})
    body = (
        "Random weights (sizes do not depend on training); `Prune(s)` (global) then values "
        "stored as fp32, fp16 or int8 (+ one float32 scale per output channel). `bound` = "
        "ideal non-zero bytes + buffer bytes (BatchNorm statistics, stored dense) + numel·H(1−s)/8. `file/bound` is the real file (positions "
        "coded with Golomb-Rice gaps, metadata included) over that bound; `bitmask/bound` "
        "is what a plain bitmask index would give. Target: file ≤ 1.15 × bound at 90% "
        f"and 98%. Command: `.venv/bin/python benchmarks/storage.py`. Results: `{path.name}`.\n\n"
        + markdown_table(
            [
                "model",
                "sparsity",
                "values",
                "file B",
                "ideal non-zero B",
                "dense B",
                "bound B",
                "file/bound",
                "bitmask/bound",
                "ratio dense/file",
            ],
            rows,
        )
    )
    update_docs("storage", "Storage: real file bytes vs the entropy bound", body)
    print(body)


if __name__ == "__main__":
    main()
