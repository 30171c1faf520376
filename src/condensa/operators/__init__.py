"""Operators: compress (π) and decompress (Δ) one tensor at a time."""

from condensa.operators.base import (
    AffineTensor,
    CastTensor,
    ChainedTensor,
    Compressed,
    GroupAffineTensor,
    Operator,
    PrunedTensor,
    PruneOperator,
)
from condensa.operators.chain import Chain, flatten
from condensa.operators.prune import NM, Block, ChannelMask, Channels, Magnitude
from condensa.operators.quantize import Affine, Cast, GroupAffine
from condensa.operators.registry import OPERATORS, from_dict, register_operator

__all__ = [
    "NM",
    "OPERATORS",
    "Affine",
    "AffineTensor",
    "GroupAffine",
    "GroupAffineTensor",
    "Block",
    "Cast",
    "CastTensor",
    "Chain",
    "ChainedTensor",
    "Compressed",
    "Magnitude",
    "Operator",
    "PruneOperator",
    "PrunedTensor",
    "ChannelMask",
    "Channels",
    "flatten",
    "from_dict",
    "register_operator",
]
