"""Reference models (no torchvision), each with a width multiplier for tiny test versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from condensa.errors import ConfigError
from condensa.zoo.alexnet import AlexNet
from condensa.zoo.digits import DigitsCNN
from condensa.zoo.lenet import LeNet5, LeNet300100
from condensa.zoo.lstm import LSTMLanguageModel
from condensa.zoo.resnet import ResNet
from condensa.zoo.vgg import VGG

MODELS: dict[str, Callable[..., nn.Module]] = {
    "digits_cnn": DigitsCNN,
    "lenet300100": LeNet300100,
    "lenet5": LeNet5,
    "vgg11": lambda **kw: VGG(11, **kw),
    "vgg16": lambda **kw: VGG(16, **kw),
    "vgg19": lambda **kw: VGG(19, **kw),
    "resnet20": lambda **kw: ResNet(20, **kw),
    "resnet32": lambda **kw: ResNet(32, **kw),
    "resnet56": lambda **kw: ResNet(56, **kw),
    "alexnet": AlexNet,
    "lstm_lm": LSTMLanguageModel,
}
"""Model factories by zoo name."""


def get(name: str, **kwargs: Any) -> nn.Module:
    """Build the zoo model ``name`` with ``kwargs``.

    Raises:
        ConfigError: unknown name (the valid names are listed) or bad arguments.

    """
    if name not in MODELS:
        raise ConfigError(f"unknown zoo model {name!r}; valid: {', '.join(MODELS)}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid arguments for zoo model {name!r}: {exc}") from None


__all__ = [
    "MODELS",
    "VGG",
    "AlexNet",
    "DigitsCNN",
    "LSTMLanguageModel",
    "LeNet300100",
    "LeNet5",
    "ResNet",
    "get",
]
