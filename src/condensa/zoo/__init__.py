"""Reference models (no torchvision)."""

from condensa.zoo.digits import DigitsCNN

__all__ = ["DigitsCNN"]
