"""One-shot layer compression from calibration statistics: Wanda, SparseGPT and GPTQ.

Each function takes one layer's weight as rows `(out, cols)` and the statistics of its
inputs, and returns the compressed weight; nothing is mutated. ``hessian`` is the sum
of ``x xᵀ`` over the calibration inputs `(cols, cols)` (``2 X Xᵀ`` up to scale; the
scale cancels) and ``count`` the number of input rows it summed.

References:
    Sun et al., "A Simple and Effective Pruning Approach for Large Language Models"
    (Wanda), ICLR 2024: score ``|W_ij| * ||X_j||``, compared within each output row.
    Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
    One-Shot", ICML 2023: optimal-brain-surgeon updates from the inverse Hessian's
    Cholesky factor, masks chosen per block of columns.
    Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative
    Pre-trained Transformers", ICLR 2023: columns quantized in order, each one's error
    spread over the columns not yet quantized.

"""

from __future__ import annotations

import torch

from condensa.functional.groups import group_params, qrange
from condensa.functional.sparsity import n_keep

BLOCK = 128
"""Columns updated together (SparseGPT and GPTQ's lazy batch updates)."""
DAMPING = 0.01
"""Fraction of the Hessian's mean diagonal added to it (both papers' default)."""


def wanda_scores(weight: torch.Tensor, hessian: torch.Tensor, count: int) -> torch.Tensor:
    """`(out, cols)` Wanda scores ``|W_ij| * sqrt(mean_n x_nj²)``."""
    norms = (hessian.diagonal().clamp(min=0) / max(count, 1)).sqrt()  # (cols,)
    return weight.detach().abs().float() * norms.unsqueeze(0)


def row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """`bool` keep-mask with the same number kept in every row: the highest scores."""
    rows, cols = scores.shape
    keep = n_keep(cols, sparsity)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if keep:
        order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :keep]
        mask.scatter_(1, order, True)
    return mask


def nm_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """`bool` keep-mask: the ``n`` highest scores of every ``m`` consecutive columns."""
    rows, cols = scores.shape
    groups = scores.reshape(rows, cols // m, m)
    order = torch.argsort(groups, dim=2, descending=True, stable=True)[:, :, :n]
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(2, order, True)
    return keep.reshape(rows, cols)


def inverse_hessian_factor(
    weight: torch.Tensor, hessian: torch.Tensor, damping: float = DAMPING
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, U)``: the weight with dead inputs zeroed, and the upper Cholesky factor of H⁻¹.

    Inputs never seen (zero diagonal) get a unit diagonal and zero weights, as in the
    reference code; ``damping`` times the mean diagonal is added for stability, and
    doubled (up to 6 times) if the factorization still fails.
    """
    w = weight.detach().float().clone()
    h = hessian.detach().float().clone()
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    damp = damping * h.diagonal().mean()
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    for _ in range(7):
        factor, info = torch.linalg.cholesky_ex(h + damp * eye)
        if int(info) == 0:
            inverse = torch.cholesky_inverse(factor)
            upper, info = torch.linalg.cholesky_ex(inverse, upper=True)
            if int(info) == 0:
                return w, upper
        damp = damp * 2
    raise torch.linalg.LinAlgError("the calibration Hessian is not positive definite")


def sparsegpt(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    *,
    sparsity: float = 0.5,
    nm: tuple[int, int] | None = None,
    block: int = BLOCK,
    damping: float = DAMPING,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT: prune and reconstruct `(out, cols)` rows.

    Args:
        weight: `(out, cols)`.
        hessian: `(cols, cols)` input statistics.
        sparsity: fraction pruned (unstructured); each block of columns prunes that
            fraction of its entries with the lowest ``w² / [H⁻¹]_jj²``.
        nm: ``(n, m)`` to keep ``n`` of every ``m`` consecutive columns instead.
        block: columns updated together.
        damping: see :func:`inverse_hessian_factor`.

    Returns:
        ``(weight, keep)``: the reconstructed weight (zero off ``keep``) and the `bool` mask.

    """
    w, hinv = inverse_hessian_factor(weight, hessian, damping)
    rows, cols = w.shape
    keep = torch.ones_like(w, dtype=torch.bool)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = w[:, i1:i2].clone()
        h1 = hinv[i1:i2, i1:i2]
        d1 = h1.diagonal()
        err1 = torch.zeros_like(w1)
        if nm is None:
            scores = w1.square() / d1.square().unsqueeze(0)
            n_prune = round(sparsity * scores.numel())
            pruned = torch.zeros_like(w1, dtype=torch.bool)
            if n_prune:
                lowest = torch.argsort(scores.reshape(-1), stable=True)[:n_prune]
                pruned.view(-1)[lowest] = True
        else:
            pruned = torch.zeros_like(w1, dtype=torch.bool)
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                part = w1[:, i : i + nm[1]].square() / d1[i : i + nm[1]].square().unsqueeze(0)
                pruned[:, i : i + nm[1]] = ~nm_keep(part, nm[0], nm[1])
            column = w1[:, i]
            q = torch.where(pruned[:, i], torch.zeros_like(column), column)
            e = (column - q) / d1[i]
            w1[:, i:] -= e.unsqueeze(1) * h1[i, i:].unsqueeze(0)
            w1[:, i] = q
            err1[:, i] = e
        w[:, i1:i2] = w1
        keep[:, i1:i2] = ~pruned
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w * keep, keep


def gptq(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    *,
    bits: int,
    symmetric: bool = False,
    group_size: int | None = None,
    keep: torch.Tensor | None = None,
    damping: float = DAMPING,
    act_order: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """GPTQ: quantization of `(out, cols)` rows with error compensation.

    Args:
        weight: `(out, cols)`.
        hessian: `(cols, cols)` input statistics.
        bits: bits per level (4 or 8).
        symmetric: levels symmetric around zero (else a zero point per group).
        group_size: columns per scale (None: one scale per row). A group's scale is
            taken from its columns when the quantization reaches them (after the
            errors of earlier columns were spread onto them).
        keep: optional `bool` mask of entries to keep; pruned entries stay zero.
        damping: see :func:`inverse_hessian_factor`.
        act_order: quantize the columns with the largest input energy (Hessian
            diagonal) first, so their errors are spread over the columns that matter
            less; groups are then fixed from the unquantized weight beforehand (static
            groups), so the stored layout does not change.

    Returns:
        ``(q, scale, zero, group_size)``: `int16` levels `(out, cols)`, `(out, groups)`
        float32 scales and zero points, and the group size used.

    """
    rows, cols = weight.shape
    size = cols if group_size is None else min(group_size, cols)
    order, static = None, None
    if act_order:
        order = torch.argsort(hessian.diagonal(), descending=True, stable=True)
        base = weight.masked_fill(hessian.diagonal() == 0, 0.0)  # dead inputs: zero
        static = group_params(base if keep is None else base * keep, size, bits, symmetric)
        weight, hessian = weight[:, order], hessian[order][:, order]
        keep = None if keep is None else keep[:, order]
    w, hinv = inverse_hessian_factor(weight, hessian, damping)
    if keep is not None:
        w = w * keep
    bounds = qrange(bits, symmetric)
    q = torch.zeros(rows, cols, dtype=torch.int16, device=w.device)
    scales, zeros = [], []
    block = size if size < cols and order is None else BLOCK  # a group in one block
    scale = zero = None
    if size == cols and order is None:
        scale, zero = group_params(w, size, bits, symmetric)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = w[:, i1:i2].clone()
        h1 = hinv[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            if order is not None and static is not None:  # the original column's group
                group = int(order[i1 + i]) // size
                scale, zero = static[0][:, group : group + 1], static[1][:, group : group + 1]
            elif size < cols and (i1 + i) % size == 0:
                scale, zero = group_params(w1[:, i : i + size], size, bits, symmetric)
                scales.append(scale)
                zeros.append(zero)
            assert scale is not None and zero is not None
            column = w1[:, i]
            level = (torch.round(column / scale[:, 0]) + zero[:, 0]).clamp_(*bounds)
            value = (level - zero[:, 0]) * scale[:, 0]
            if keep is not None:  # a pruned entry stays exactly zero: its level is the zero
                value = value * keep[:, i1 + i]
                level = torch.where(keep[:, i1 + i], level, zero[:, 0])
            e = (column - value) / h1[i, i]
            w1[:, i:] -= e.unsqueeze(1) * h1[i, i:].unsqueeze(0)
            q[:, i1 + i] = level.to(torch.int16)
            err1[:, i] = e
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    if order is not None and static is not None:
        return q[:, torch.argsort(order)], static[0], static[1], size
    if size == cols:
        assert scale is not None and zero is not None
        return q, scale, zero, size
    return q, torch.cat(scales, dim=1), torch.cat(zeros, dim=1), size
