"""What a compression method returns, and how it picks the best model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from condensa.errors import CondensaError, ConfigError

LOWER_IS_BETTER = ("loss", "perplexity", "ppl", "error", "mse")


@dataclass
class CompressionResult:
    """A compressed model and the record of how it was obtained.

    Attributes:
        model: the compressed model (masks / fake quantization attached).
        history: one dict per evaluation (iteration, metrics, mu, sparsity, ...).
        best_score: validation score of ``model``.
        best_iteration: the iteration (L-C) or evaluation index it came from.
        state: method-specific state for resuming (``LCState`` for L-C), or None.

    """

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float | None = None
    best_iteration: int = 0
    state: Any = None

    @property
    def metrics(self) -> dict[str, float]:
        """Validation metrics of ``model`` as measured when it was chosen (``{}`` if never).

        Callers that need the returned model's metrics read them here instead of
        evaluating it again.
        """
        for record in reversed(self.history):
            if record.get("iteration") == float(self.best_iteration):
                return {k[4:]: v for k, v in record.items() if k.startswith("val_")}
        return {}


DIAGNOSTICS = ("iteration", "steps", "mu", "relative_distance", "sparsity", "train_loss")
"""History keys kept by :meth:`CompressionResult.diagnostics` (beside ``val_<metric>``)."""


def diagnostics(history: list[dict[str, float]], metric: str) -> list[dict[str, float]]:
    """The convergence record of a method's history.

    Per evaluation: the keys of :data:`DIAGNOSTICS` it has and the validation
    ``metric`` (as ``val``).
    """
    rows = []
    for record in history:
        row = {k: float(record[k]) for k in DIAGNOSTICS if k in record}
        if f"val_{metric}" in record:
            row["val"] = float(record[f"val_{metric}"])
        rows.append(row)
    return rows


class TrainingDivergedError(CondensaError, FloatingPointError):
    """Training diverged; ``.result`` holds the best model found before that."""

    def __init__(self, message: str, result: CompressionResult | None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Selector:
    """Which validation metric picks the best model, and in which direction.

    Args:
        metric: key of the trainer's ``evaluate`` dict.
        higher_is_better: direction; None infers it (False for loss/perplexity-like
            names). After construction it is always the resolved ``bool``.

    """

    metric: str = "accuracy"
    higher_is_better: bool | None = None

    def __post_init__(self) -> None:
        if self.higher_is_better is None:
            inferred = not any(word in self.metric.lower() for word in LOWER_IS_BETTER)
            object.__setattr__(self, "higher_is_better", inferred)

    def score(self, metrics: dict[str, float]) -> float:
        """The metric's value in ``metrics``; raises a clear error when missing."""
        if self.metric not in metrics:
            raise ConfigError(
                f"metric {self.metric!r} is not among the trainer's metrics {sorted(metrics)}"
            )
        return float(metrics[self.metric])

    def better(self, candidate: float, incumbent: float | None) -> bool:
        """Whether ``candidate`` beats ``incumbent`` (ties keep the incumbent)."""
        if incumbent is None:
            return True
        return candidate > incumbent if self.higher_is_better else candidate < incumbent
