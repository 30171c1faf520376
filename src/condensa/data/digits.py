"""scikit-learn's digits: 1,797 8x8 images shipped inside the scikit-learn wheel."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from condensa.errors import CondensaError, ConfigError


def load_digits(
    *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """The digits dataset as ``(train, test)`` tensor datasets.

    Images are scaled to ``[0, 1]`` and shaped `(N, 1, 8, 8)`; labels are `(N,)` int64.
    The split is stratified by class and fixed by ``seed``.

    Raises:
        CondensaError: scikit-learn is not installed (``pip install scikit-learn``).
        ConfigError: ``test_fraction`` outside ``(0, 1)``.

    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise CondensaError(
            "the digits dataset ships with scikit-learn: pip install 'condensa[data]'"
        ) from None
    bunch = sk_load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    labels = torch.tensor(bunch.target, dtype=torch.int64)  # (N,)
    generator = torch.Generator().manual_seed(seed)
    test_mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():
        index = (labels == c).nonzero().squeeze(1)
        index = index[torch.randperm(len(index), generator=generator)]
        test_mask[index[: round(len(index) * test_fraction)]] = True
    return (
        TensorDataset(images[~test_mask], labels[~test_mask]),
        TensorDataset(images[test_mask], labels[test_mask]),
    )
