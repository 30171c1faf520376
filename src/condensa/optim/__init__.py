"""Accuracy recovery: the L-C optimizer, masked fine-tuning, and the training protocol."""

from condensa.optim.finetune import DC, FineTune
from condensa.optim.language import LanguageModelTrainer
from condensa.optim.lc import LC, LCState
from condensa.optim.metrics import accuracy_metrics, perplexity, topk_correct
from condensa.optim.result import CompressionResult, Selector, TrainingDivergedError
from condensa.optim.trainer import (
    SCHEDULES,
    NonFiniteLossError,
    SupervisedTrainer,
    Trainer,
    adam,
    sgd,
)

__all__ = [
    "DC",
    "LC",
    "SCHEDULES",
    "CompressionResult",
    "FineTune",
    "LCState",
    "LanguageModelTrainer",
    "NonFiniteLossError",
    "Selector",
    "SupervisedTrainer",
    "Trainer",
    "TrainingDivergedError",
    "accuracy_metrics",
    "adam",
    "perplexity",
    "sgd",
    "topk_correct",
]
