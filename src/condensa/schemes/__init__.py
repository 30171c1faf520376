"""Schemes: which tensors to compress, with which operator, and how much each.

Example:
    >>> from condensa import schemes
    >>> scheme = schemes.Compose([schemes.Prune(0.9), schemes.Quantize("float16")])

"""

from condensa.schemes.allocation import ALLOCATIONS, allocate
from condensa.schemes.attention import HeadLayout, register_attention
from condensa.schemes.base import OperatorScheme, Scheme
from condensa.schemes.builtins import (
    BlockPrune,
    Compose,
    FilterPrune,
    NeuronPrune,
    NMPrune,
    Prune,
    Quantize,
    StructurePrune,
)
from condensa.schemes.decoder import MLPPrune
from condensa.schemes.groups import ChannelGroup, GroupMember, bind_groups
from condensa.schemes.heads import HeadPrune
from condensa.schemes.plan import Plan, PlanEntry
from condensa.schemes.selection import MODULE_TYPES, Selection, Target
from condensa.schemes.spec import SCHEMES, Rules, from_dict, from_toml, to_toml

__all__ = [
    "ALLOCATIONS",
    "MODULE_TYPES",
    "SCHEMES",
    "BlockPrune",
    "ChannelGroup",
    "Compose",
    "FilterPrune",
    "GroupMember",
    "HeadLayout",
    "HeadPrune",
    "MLPPrune",
    "NMPrune",
    "NeuronPrune",
    "OperatorScheme",
    "Plan",
    "PlanEntry",
    "Prune",
    "Quantize",
    "Rules",
    "Scheme",
    "Selection",
    "StructurePrune",
    "Target",
    "allocate",
    "bind_groups",
    "from_dict",
    "from_toml",
    "register_attention",
    "to_toml",
]
