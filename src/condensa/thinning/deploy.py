"""The deployable model: what would be shipped, and what every measurement times.

Whole pruned structures are thinned away; other masks are baked in (masked weights do
not speed up dense kernels). Objectives, the ONNX export and int8 inference all start
from it, so they sit above thinning.
"""

from __future__ import annotations

import warnings

from torch import nn

from condensa.errors import ConfigError, UnsupportedModuleError
from condensa.inputs import Inputs
from condensa.masking import bake, masks
from condensa.thinning.thin import thin


def deployable(model: nn.Module, example_inputs: Inputs) -> nn.Module:
    """What would be deployed: the thinned model, or the masks baked in (a new model).

    Thinning that cannot apply (unstructured masks, a model that cannot be traced)
    falls back to baking the masks in; the model given is never modified.
    """
    if masks(model):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # kept channels: the model still runs
                return thin(model, example_inputs).eval()
        except (ConfigError, UnsupportedModuleError):
            pass  # unstructured masks, or a model thinning cannot trace: bake them
    return bake(model).eval()
