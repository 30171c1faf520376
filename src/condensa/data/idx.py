"""MNIST and Fashion-MNIST from the four original IDX ``.gz`` files in a directory."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from condensa.errors import CondensaError, ConfigError

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
HOW_TO_GET = {
    "fashion": "apt-get install -y dataset-fashion-mnist (files land in "
    f"{DEBIAN_FASHION_MNIST}), or download the four files from the Fashion-MNIST project",
    "mnist": "copy the four MNIST IDX .gz files (train-images-idx3-ubyte.gz, ...) into it",
}
IDX_DTYPE = {0x08: torch.uint8}


def read_idx(path: Path) -> torch.Tensor:
    """Read one IDX file (optionally gzip-compressed) into a uint8 tensor.

    Raises:
        CondensaError: the file is not IDX, uses an unsupported type, or is truncated.

    """
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise CondensaError(f"cannot read IDX file {str(path)!r}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise CondensaError(f"{str(path)!r} is not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPE:
        raise CondensaError(f"{str(path)!r}: unsupported IDX element type 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CondensaError(f"{str(path)!r} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = 1
    for size in shape:
        count *= size
    if len(raw) - header != count:
        raise CondensaError(
            f"{str(path)!r} is truncated or corrupt: header says shape {shape} "
            f"({count} bytes of data) but the file holds {len(raw) - header}"
        )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def load_mnist(
    root: str | Path | None = None,
    *,
    kind: str = "fashion",
    pad_to: int | None = None,
) -> tuple[TensorDataset, TensorDataset]:
    """MNIST-format ``(train, test)`` datasets: images `(N, 1, S, S)` in ``[0, 1]``, labels int64.

    Args:
        root: directory with the four IDX ``.gz`` files. When None and
            ``kind="fashion"``, the Debian package ``dataset-fashion-mnist`` is used.
        kind: ``"fashion"`` or ``"mnist"`` (only changes the help in error messages).
        pad_to: zero-pad images to this side (e.g. 32 for VGG-style models).

    Raises:
        CondensaError: missing files (names them and says how to get them), corrupt
            files, or images and labels of different lengths.

    """
    if kind not in HOW_TO_GET:
        raise ConfigError(f"kind must be 'fashion' or 'mnist', got {kind!r}")
    if root is None:
        if kind != "fashion":
            raise ConfigError("give the directory holding the MNIST IDX files")
        root = DEBIAN_FASHION_MNIST
    root = Path(root)
    missing = [name for name in FILES.values() if not (root / name).is_file()]
    if missing:
        raise CondensaError(
            f"{kind}-MNIST files missing in {str(root)!r}: {', '.join(missing)}. "
            f"To get them: {HOW_TO_GET[kind]}"
        )
    arrays = {key: read_idx(root / name) for key, name in FILES.items()}
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
            raise CondensaError(
                f"{split} images {tuple(images.shape)} and labels {tuple(labels.shape)} "
                f"in {str(root)!r} do not match"
            )
        x = images.float().div_(255.0).unsqueeze(1)  # (N, 1, 28, 28)
        if pad_to is not None:
            extra = pad_to - x.shape[-1]
            if extra < 0:
                raise ConfigError(f"pad_to={pad_to} is smaller than the images ({x.shape[-1]})")
            x = torch.nn.functional.pad(x, (extra // 2, extra - extra // 2) * 2)
        out.append(TensorDataset(x, labels.long()))
    return out[0], out[1]
