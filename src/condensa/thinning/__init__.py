"""Thinning: physically remove pruned channel groups so dense kernels run faster."""

from condensa.thinning.groups import dependency_groups
from condensa.thinning.thin import RESIDUAL_POLICIES, KeptChannels, Thinned, thin, thin_report

__all__ = [
    "RESIDUAL_POLICIES",
    "KeptChannels",
    "Thinned",
    "dependency_groups",
    "thin",
    "thin_report",
]
