"""Accuracy recovery: training abstraction (L-C and fine-tuning build on it)."""

from condensa.optim.trainer import SupervisedTrainer, Trainer

__all__ = ["SupervisedTrainer", "Trainer"]
