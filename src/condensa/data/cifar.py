"""CIFAR-10 from the standard python-batches directory (``cifar-10-batches-py``)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from condensa.errors import CondensaError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),  # bytes inside protocol-2 pickles
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches only: plain containers and numpy arrays, no other code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        data = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as exc:
        raise CondensaError(f"cannot read CIFAR batch {str(path)!r}: {exc}") from None
    if not isinstance(data, dict) or b"data" not in data or b"labels" not in data:
        raise CondensaError(f"{str(path)!r} is not a CIFAR-10 batch (no data/labels)")
    pixels = torch.as_tensor(data[b"data"])
    labels = torch.as_tensor(data[b"labels"], dtype=torch.int64)
    if pixels.dim() != 2 or pixels.shape[1] != 3072 or len(pixels) != len(labels):
        raise CondensaError(
            f"{str(path)!r}: expected data of shape (N, 3072) and N labels, got "
            f"{tuple(pixels.shape)} and {len(labels)}"
        )
    return pixels.reshape(-1, 3, 32, 32), labels


def load_cifar10(
    root: str | Path, *, normalize: bool = True
) -> tuple[TensorDataset, TensorDataset]:
    """CIFAR-10 ``(train, test)``: images `(N, 3, 32, 32)` float, labels int64.

    Args:
        root: the ``cifar-10-batches-py`` directory (``data_batch_1..5``, ``test_batch``).
        normalize: standardize with the usual per-channel mean and std.

    Raises:
        CondensaError: missing batches (named, with how to get them) or corrupt ones.

    """
    root = Path(root)
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if not (root / n).is_file()]
    if missing:
        raise CondensaError(
            f"CIFAR-10 batches missing in {str(root)!r}: {', '.join(missing)}. To get them: "
            "download cifar-10-python.tar.gz from the CIFAR-10 page on another machine and "
            "extract it: tar xzf cifar-10-python.tar.gz (gives cifar-10-batches-py/)"
        )
    out = []
    for names in (TRAIN_BATCHES, (TEST_BATCH,)):
        parts = [_read_batch(root / n) for n in names]
        x = torch.cat([p[0] for p in parts]).float().div_(255.0)
        if normalize:
            x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        out.append(TensorDataset(x, torch.cat([p[1] for p in parts])))
    return out[0], out[1]
