"""Keep-masks from scores: the top-k selection with deterministic tie-breaking."""

from __future__ import annotations

import torch

from condensa.functional.sparsity import n_keep

SAMPLE = 1 << 18
"""Entries sampled to bracket a quantile before exact selection in the bracket."""


def kth_smallest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th smallest entry (1-based) of a 1-D float tensor, without a full sort.

    Large tensors: a fixed random sample brackets the quantile, two comparisons count
    what lies below and inside the bracket, and exact selection runs on the bracket
    alone (falling back to the whole tensor if the bracket missed).
    """
    n = flat.numel()
    if n <= 1 << 20:
        return torch.kthvalue(flat.cpu(), k).values.to(flat.device)
    size = min(SAMPLE, n >> 5)
    generator = torch.Generator().manual_seed(n)
    sample = flat[torch.randint(0, n, (size,), generator=generator).to(flat.device)]
    ordered = torch.sort(sample).values
    margin = int(6 * (size * 0.25) ** 0.5) + 1  # six standard deviations of the rank
    at = k / n * size
    low = ordered[max(0, int(at) - margin)]
    high = ordered[min(size - 1, int(at) + margin)]
    below = int(torch.count_nonzero(flat < low))
    band = flat[(flat >= low) & (flat <= high)]
    if below < k <= below + band.numel():
        return torch.kthvalue(band.cpu(), k - below).values.to(flat.device)
    return torch.kthvalue(flat.cpu(), k).values.to(flat.device)


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
    flat = scores.detach().reshape(-1).float()
    n = flat.numel()
    if kept <= 0:
        return torch.zeros(scores.shape, dtype=torch.bool, device=flat.device)
    if kept >= n:
        return torch.ones(scores.shape, dtype=torch.bool, device=flat.device)
    threshold = kth_smallest(flat, n - kept + 1)  # the kept-th largest
    mask = flat > threshold
    ties = (flat == threshold).nonzero().flatten()[: kept - int(torch.count_nonzero(mask))]
    mask[ties] = True  # lower flat index first among equal scores
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
