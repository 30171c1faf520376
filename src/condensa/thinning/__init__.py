"""Thinning: physically remove pruned channel groups so dense kernels run faster."""

from condensa.thinning.deploy import deployable
from condensa.thinning.groups import PRUNERS, dependency_groups, register_pruner
from condensa.thinning.thin import RESIDUAL_POLICIES, KeptChannels, Thinned, thin, thin_report

__all__ = [
    "RESIDUAL_POLICIES",
    "PRUNERS",
    "KeptChannels",
    "Thinned",
    "dependency_groups",
    "deployable",
    "register_pruner",
    "thin",
    "thin_report",
]
