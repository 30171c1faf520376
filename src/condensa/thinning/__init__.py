"""Thinning: physically remove pruned filters and neurons so dense kernels run faster."""

from condensa.thinning.slicers import SLICERS, slicer_for
from condensa.thinning.thin import RESIDUAL_POLICIES, thin

__all__ = ["RESIDUAL_POLICIES", "SLICERS", "slicer_for", "thin"]
