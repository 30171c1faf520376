"""Condensa: programmable model compression for PyTorch.

Compose operators into schemes, compress a model with them, and inspect the result.

Example:
    >>> import condensa
    >>> from condensa import schemes
    >>> small = condensa.compress(model, schemes.Compose(
    ...     [schemes.Prune(0.9), schemes.Quantize("float16")]))  # doctest: +SKIP
    >>> print(condensa.stats(small))  # doctest: +SKIP

"""

from condensa import formats, functional, masking, objectives, operators, optim, schemes, zoo
from condensa.api import CompressionSearch, search_compression
from condensa.compress import compress
from condensa.errors import (
    CondensaError,
    ConfigError,
    NonFiniteError,
    SelectionError,
    ShapeError,
    UnsupportedModuleError,
)
from condensa.export import export_onnx
from condensa.io import load, save
from condensa.stats import LayerStats, ModelStats, stats
from condensa.thinning import thin

__version__ = "0.1.0"

__all__ = [
    "CompressionSearch",
    "CondensaError",
    "ConfigError",
    "LayerStats",
    "ModelStats",
    "NonFiniteError",
    "SelectionError",
    "ShapeError",
    "UnsupportedModuleError",
    "__version__",
    "compress",
    "export_onnx",
    "formats",
    "functional",
    "load",
    "masking",
    "objectives",
    "operators",
    "optim",
    "save",
    "schemes",
    "search_compression",
    "stats",
    "thin",
    "zoo",
]
