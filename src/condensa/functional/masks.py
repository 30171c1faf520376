"""Keep-masks from scores: the top-k selection with deterministic tie-breaking."""

from __future__ import annotations

import torch

from condensa.functional.sparsity import n_keep


def topk_mask(scores: torch.Tensor, kept: int) -> torch.Tensor:
    """Boolean mask keeping the ``kept`` largest entries of ``scores``.

    Ties are broken deterministically: among equal scores the entry with the lower
    flat index is kept. The result has exactly ``kept`` True entries.

    Args:
        scores: any shape; larger means more important.
        kept: number of entries to keep, ``0 <= kept <= scores.numel()``.

    Returns:
        `bool` tensor of ``scores.shape`` (True = keep).

    Example:
        >>> topk_mask(torch.tensor([1.0, 3.0, 3.0, 2.0]), 2).tolist()
        [False, True, True, False]

    """
    flat = scores.detach().reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if kept > 0:
        # stable sort on the negated scores: descending, lower index first on ties
        order = torch.argsort(-flat.float(), stable=True)
        mask[order[:kept]] = True
    return mask.reshape(scores.shape)


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``n_keep(numel, sparsity)`` entries of largest magnitude.

    Args:
        weight: any shape.
        sparsity: fraction of zeros in ``[0, 1)``.

    Returns:
        `bool` tensor of ``weight.shape`` with exactly ``n_keep(weight.numel(), sparsity)``
        True entries.

    """
    return topk_mask(weight.abs(), n_keep(weight.numel(), sparsity))


def achieved_sparsity(tensor: torch.Tensor) -> float:
    """Fraction of exact zeros in ``tensor`` (0.0 for an empty tensor)."""
    if tensor.numel() == 0:
        return 0.0
    return float((tensor == 0).sum()) / tensor.numel()
