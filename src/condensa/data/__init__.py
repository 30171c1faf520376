"""Dataset loaders that read local files only (never download)."""

from condensa.data.digits import load_digits

__all__ = ["load_digits"]
