"""Accuracy recovery: L-C, masked fine-tuning, gradual pruning, distillation, training."""

from condensa.optim.distill import Distillation, Distiller
from condensa.optim.finetune import DC, FineTune
from condensa.optim.gmp import GMP
from condensa.optim.language import LanguageModelTrainer
from condensa.optim.lc import LC, LCState
from condensa.optim.methods import DEFAULT_METHOD, METHODS, build_method, register_method
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
    "DEFAULT_METHOD",
    "METHODS",
    "build_method",
    "register_method",
    "DC",
    "LC",
    "SCHEDULES",
    "GMP",
    "CompressionResult",
    "Distillation",
    "Distiller",
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
