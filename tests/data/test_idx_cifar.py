"""Image loaders read local IDX/CIFAR files exactly, and every missing, truncated, corrupt or
hostile file is a clear error (a pickle never runs code).
"""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from condensa import CondensaError
from condensa.data import load_cifar10, load_mnist, read_idx
from condensa.data.idx import FILES


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 5)):
        write_idx(tmp_path / FILES[f"{split}_images"], rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / FILES[f"{split}_labels"], rng.integers(0, 10, (n,)))
    return tmp_path


def test_mnist_idx_round_trip(mnist_dir):
    train, test = load_mnist(mnist_dir, kind="mnist")
    x, y = train.tensors
    assert x.shape == (12, 1, 28, 28) and y.dtype == torch.int64 and len(test) == 5
    raw = read_idx(mnist_dir / FILES["train_images"])
    assert torch.equal(x[:, 0], raw.float() / 255)


def test_padding_to_32(mnist_dir):
    x = load_mnist(mnist_dir, kind="mnist", pad_to=32)[0].tensors[0]
    assert x.shape == (12, 1, 32, 32)
    assert (x[..., :2, :] == 0).all() and (x[..., :, -2:] == 0).all()


def test_missing_files_named_with_how_to_get(tmp_path):
    with pytest.raises(
        CondensaError,
        match=r"missing in .*train-images-idx3-ubyte.gz.*apt-get install -y dataset-fashion-mnist",
    ):
        load_mnist(tmp_path, kind="fashion")


def test_truncated_idx_is_a_clear_error(mnist_dir):
    path = mnist_dir / FILES["train_images"]
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(CondensaError, match="truncated or corrupt"):
        load_mnist(mnist_dir, kind="mnist")


def test_not_idx_and_corrupt_gzip(mnist_dir):
    (mnist_dir / FILES["test_labels"]).write_bytes(gzip.compress(b"\x01\x02hello"))
    with pytest.raises(CondensaError, match="not an IDX file"):
        load_mnist(mnist_dir, kind="mnist")
    (mnist_dir / FILES["test_labels"]).write_bytes(b"garbage, not gzip")
    with pytest.raises(CondensaError, match="cannot read IDX file"):
        load_mnist(mnist_dir, kind="mnist")


def test_images_and_labels_of_different_lengths(mnist_dir):
    write_idx(mnist_dir / FILES["test_labels"], np.zeros(4))
    with pytest.raises(CondensaError, match="do not match"):
        load_mnist(mnist_dir, kind="mnist")


def _cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    data = {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"labels": list(rng.integers(0, 10, n)),
    }
    data[b"labels"] = [int(v) for v in data[b"labels"]]
    path.write_bytes(pickle.dumps(data, protocol=2))
    return data


@pytest.fixture
def cifar_dir(tmp_path):
    for i in range(1, 6):
        _cifar_batch(tmp_path / f"data_batch_{i}", 4, i)
    _cifar_batch(tmp_path / "test_batch", 3, 9)
    return tmp_path


def test_cifar_batches(cifar_dir):
    train, test = load_cifar10(cifar_dir, normalize=False)
    x, y = train.tensors
    assert x.shape == (20, 3, 32, 32) and len(test) == 3
    first = pickle.loads((cifar_dir / "data_batch_1").read_bytes())
    assert torch.equal(x[0], torch.tensor(first[b"data"][0]).reshape(3, 32, 32).float() / 255)
    assert y[:4].tolist() == first[b"labels"]


def test_cifar_missing_and_corrupt(cifar_dir):
    (cifar_dir / "data_batch_3").unlink()
    with pytest.raises(CondensaError, match="data_batch_3.*tar xzf cifar-10-python.tar.gz"):
        load_cifar10(cifar_dir)
    (cifar_dir / "data_batch_3").write_bytes(b"\x80\x02truncated")
    with pytest.raises(CondensaError, match="cannot read CIFAR batch"):
        load_cifar10(cifar_dir)


def test_cifar_refuses_code_in_pickles(cifar_dir, tmp_path):
    """A batch whose pickle would call os.system is refused before anything runs."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    (cifar_dir / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(CondensaError, match="refusing to load"):
        load_cifar10(cifar_dir)
    assert not marker.exists()
