"""Position encodings of sparse tensors: bitmask and split Golomb-Rice gap codes.

A keep-mask over ``n`` flat positions is stored either as a bitmask (``n / 8`` bytes)
or as the gaps between kept positions, Golomb-Rice coded with parameter ``k`` and
split into two streams: the quotients in unary (``q`` ones, then a zero) and the
remainders as fixed ``k``-bit fields. For i.i.d. positions the gaps are geometric
and Rice codes come within a few percent of the entropy bound ``n H(density)``,
which a bitmask cannot approach at high sparsity. All functions are pure numpy.
"""

from __future__ import annotations

import math

import numpy as np


def entropy_bits(n: int, kept: int) -> float:
    """``n H(kept / n)``: the information in the positions of ``kept`` of ``n``, in bits."""
    if n == 0 or kept in (0, n):
        return 0.0
    p = kept / n
    return n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def bitmask_encode(mask: np.ndarray) -> np.ndarray:
    """`(ceil(n / 8),)` uint8 bitmask of a flat bool mask."""
    return np.packbits(mask.reshape(-1).astype(np.uint8))


def bitmask_decode(data: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`bitmask_encode`: `(n,)` bool."""
    return np.unpackbits(data, count=n).astype(bool)


def rice_parameter(n: int, kept: int) -> int:
    """The Rice parameter ``k`` minimizing the expected code length for geometric gaps."""
    if kept == 0:
        return 0
    mean_gap = max((n - kept) / kept, 1e-9)
    p = 1.0 / (1.0 + mean_gap)  # success probability of the geometric gap distribution
    if p >= 0.5:
        return 0
    # Gallager & van Voorhis: k = max(0, ceil(log2(log(phi - 1) / log(1 - p))))
    golden = (math.sqrt(5) + 1) / 2
    return max(0, math.ceil(math.log2(math.log(golden - 1) / math.log(1 - p))))


def best_rice_parameter(mask: np.ndarray) -> int:
    """The ``k`` giving the shortest Rice code for this mask's actual gaps.

    Pruning masks are not i.i.d. (whole filters vanish, gaps cluster), so the exact
    code length of each candidate ``k`` near the geometric optimum is computed.
    """
    positions = np.flatnonzero(mask.reshape(-1))
    if len(positions) == 0:
        return 0
    gaps = np.diff(np.concatenate([[-1], positions])) - 1
    guess = rice_parameter(mask.size, len(positions))
    candidates = range(max(0, guess - 3), guess + 4)
    sizes = [int(((gaps >> k) + 1).sum()) + k * len(gaps) for k in candidates]
    return list(candidates)[int(np.argmin(sizes))]


def rice_encode(mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gap-code the kept positions of a flat bool ``mask``.

    Returns:
        ``(unary, remainders)`` packed uint8 streams.

    """
    positions = np.flatnonzero(mask.reshape(-1))
    gaps = np.diff(np.concatenate([[-1], positions])) - 1  # zeros before each kept entry
    quotients = gaps >> k
    # unary stream: q ones then a zero for each gap
    ends = np.cumsum(quotients + 1) - 1  # index of each terminating zero
    unary = np.ones(int(ends[-1]) + 1 if len(ends) else 0, dtype=np.uint8)
    unary[ends] = 0
    remainders = gaps & ((1 << k) - 1)
    bits = (
        ((remainders[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(np.uint8)
        if k
        else np.zeros((len(gaps), 0), np.uint8)
    )
    return np.packbits(unary), np.packbits(bits.reshape(-1))


def rice_decode(unary: np.ndarray, remainders: np.ndarray, k: int, n: int, kept: int) -> np.ndarray:
    """Inverse of :func:`rice_encode`: the `(n,)` bool mask with ``kept`` True entries.

    Raises:
        ValueError: the streams hold fewer than ``kept`` codes or reach past ``n``.

    """
    mask = np.zeros(n, dtype=bool)
    if kept == 0:
        return mask
    bits = np.unpackbits(unary)
    ends = np.flatnonzero(bits == 0)[:kept]
    if len(ends) < kept:
        raise ValueError(f"the gap codes hold {len(ends)} entries, {kept} expected")
    quotients = np.diff(np.concatenate([[-1], ends])) - 1
    if len(quotients) and int(quotients.max()) > (n >> k):
        raise ValueError(f"a gap code exceeds the {n} positions")
    if k:
        fields = np.unpackbits(remainders, count=kept * k).reshape(kept, k).astype(np.int64)
        rest = fields @ (1 << np.arange(k - 1, -1, -1))
    else:
        rest = np.zeros(kept, dtype=np.int64)
    gaps = (quotients.astype(np.int64) << k) + rest
    positions = np.cumsum(gaps + 1) - 1
    if positions[0] < 0 or positions[-1] >= n or np.any(np.diff(positions) <= 0):
        raise ValueError(f"the gap codes reach position {int(positions[-1])} of {n}")
    mask[positions] = True
    return mask


def nibbles_encode(values: np.ndarray) -> np.ndarray:
    """4-bit values (``uint8`` in 0..15) packed two per byte, high nibble first."""
    if values.size % 2:
        values = np.append(values, np.uint8(0))
    return ((values[0::2] << 4) | values[1::2]).astype(np.uint8)


def nibbles_decode(packed: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` 4-bit values of :func:`nibbles_encode`'s bytes (``uint8``)."""
    return np.stack([packed >> 4, packed & 0x0F], axis=1).reshape(-1)[:count]
