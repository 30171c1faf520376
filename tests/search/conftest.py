from __future__ import annotations

import math
import warnings

import pytest


@pytest.fixture(autouse=True)
def _quiet_gp_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not p.d.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield


def logistic_accuracy(
    s: float, *, top: float = 0.92, drop: float = 0.3, center: float = 0.8, width: float = 0.03
) -> float:
    """Flat, then falling: what pruning does to accuracy."""
    return top - drop / (1 + math.exp(-(s - center) / width))


def s_star(
    threshold: float,
    *,
    top: float = 0.92,
    drop: float = 0.3,
    center: float = 0.8,
    width: float = 0.03,
) -> float:
    """The largest sparsity whose logistic accuracy meets ``threshold``."""
    return center - width * math.log(drop / (top - threshold) - 1)
