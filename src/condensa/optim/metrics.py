"""Evaluation metrics: top-k accuracy, perplexity."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Metric = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
"""``(outputs, targets) -> {name: sum over the batch}``; the trainer divides by the count."""


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, k: int) -> int:
    """Number of rows whose target is among the ``k`` largest logits.

    Args:
        logits: `(N, C)`.
        targets: `(N,)` class indices.
        k: how many top classes count (clipped to ``C``).

    """
    k = min(k, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices  # (N, k)
    return int((top == targets.unsqueeze(-1)).any(dim=-1).sum())


def accuracy_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Top-1 (``"accuracy"``) and top-5 (``"top5"``) correct counts for a batch."""
    logits = logits.reshape(-1, logits.shape[-1])
    targets = targets.reshape(-1)
    return {
        "accuracy": float(topk_correct(logits, targets, 1)),
        "top5": float(topk_correct(logits, targets, 5)),
    }


def perplexity(mean_cross_entropy: float) -> float:
    """``exp(loss)`` for a mean per-token cross-entropy in nats (inf on overflow)."""
    try:
        return math.exp(mean_cross_entropy)
    except OverflowError:
        return math.inf
