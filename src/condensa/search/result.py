"""What a search returns: the best evaluated trial, every trial, and the surrogates' view."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from condensa.search.constraint import Constraint
from condensa.search.trial import Trial


@dataclass(frozen=True)
class SurrogateView:
    """The GP posteriors at the end of a 1-D search, on a grid of sparsities (for plots).

    Attributes:
        grid: sparsities.
        accuracy_mean, accuracy_low, accuracy_high: accuracy posterior (±2σ band).
        objective_mean, objective_low, objective_high: objective posterior (±2σ band).
        feasible_probability: ``P(accuracy meets the constraint)`` at each grid point.

    """

    grid: list[float]
    accuracy_mean: list[float]
    accuracy_low: list[float]
    accuracy_high: list[float]
    objective_mean: list[float]
    objective_low: list[float]
    objective_high: list[float]
    feasible_probability: list[float]

    @classmethod
    def of(cls, grid: list[float], acc: Any, obj: Any, p: Any, constraint: Any) -> SurrogateView:
        """From the margin and objective posteriors on ``grid`` (margins back to accuracies)."""
        sign = -1.0 if constraint.lower_is_better else 1.0
        to_accuracy = lambda m: (constraint.threshold + sign * m).tolist()  # noqa: E731
        low, high = acc.mean - 2 * acc.std, acc.mean + 2 * acc.std
        return cls(
            grid=grid,
            accuracy_mean=to_accuracy(acc.mean),
            accuracy_low=to_accuracy(low if sign > 0 else high),
            accuracy_high=to_accuracy(high if sign > 0 else low),
            objective_mean=obj.mean.tolist(),
            objective_low=(obj.mean - 2 * obj.std).tolist(),
            objective_high=(obj.mean + 2 * obj.std).tolist(),
            feasible_probability=p.tolist(),
        )


@dataclass(frozen=True)
class SearchResult:
    """The outcome of :func:`condensa.search.search_sparsity`.

    Attributes:
        best: the feasible trial with the best objective — always an evaluated trial,
            never a model prediction — or None when no trial was feasible.
        trials: every trial, in order (failed ones included).
        constraint: the accuracy constraint searched under.
        s_acc, s_acc_std: the estimated largest sparsity meeting the constraint, and its
            posterior standard deviation (None when not estimable: multi-dimensional
            search, fewer than two usable trials, or no feasible region).
        closest: when nothing is feasible, the trial whose accuracy came closest.
        stopped_early: True when the search stopped before the budget because the
            answer was certain; ``reason`` says why it stopped.
        surrogate: posteriors for plotting (1-D searches), else None.
        seed: the seed used (drawn at random when none was given).
        extra: ``"answer_note"`` (why the best measured feasible trial is not the
            answer), ``"candidates"`` (indices of the trials the answer was chosen
            from, from strategies that say), ``"known"`` (the known points given),
            ``"caution"`` (the answer's feasibility is in doubt: no trial is credibly
            feasible; also in :meth:`summary`).

    """

    best: Trial | None
    trials: list[Trial]
    constraint: Constraint
    s_acc: float | None = None
    s_acc_std: float | None = None
    closest: Trial | None = None
    stopped_early: bool = False
    reason: str = ""
    surrogate: SurrogateView | None = None
    seed: int | None = None
    bounds: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        """Whether some trial met the constraint."""
        return self.best is not None

    @property
    def evaluations(self) -> int:
        """Number of ``evaluate`` calls made (failed ones included)."""
        return len(self.trials)

    def summary(self) -> str:
        """One human-readable paragraph."""
        head = f"{self.evaluations} evaluations ({self.reason})"
        if self.best is None:
            closest = (
                ""
                if self.closest is None
                else (
                    f"; closest: sparsity {_fmt(self.closest.sparsity)} with accuracy "
                    f"{self.closest.accuracy:.4g}"
                )
            )
            return (
                f"no feasible sparsity found under {self.constraint.description}{closest}; {head}"
            )
        caution = self.extra.get("caution")
        return (
            f"best sparsity {_fmt(self.best.sparsity)}: accuracy {self.best.accuracy:.4g}, "
            f"objective {_objective(self.best)} under {self.constraint.description}; {head}"
            + (f"; caution: {caution}" if caution else "")
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-friendly)."""
        return {
            "best": None if self.best is None else self.best.to_dict(),
            "trials": [t.to_dict() for t in self.trials],
            "constraint": asdict(self.constraint),
            "s_acc": self.s_acc,
            "s_acc_std": self.s_acc_std,
            "closest": None if self.closest is None else self.closest.to_dict(),
            "stopped_early": self.stopped_early,
            "reason": self.reason,
            "surrogate": None if self.surrogate is None else asdict(self.surrogate),
            "seed": self.seed,
        }


def _objective(trial: Trial) -> str:
    """The measured objective in its unit (bytes as kB/MB/GB), else the score searched."""
    value, unit = trial.extra.get("objective_value"), trial.extra.get("objective_unit", "")
    if not isinstance(value, (int, float)) or not isinstance(unit, str):
        return f"{trial.objective:.4g}"
    if unit == "bytes":
        for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= scale:
                return f"{value / scale:.4g} {name}"
    return f"{value:.4g} {unit}".rstrip()


def _fmt(point: object) -> str:
    if isinstance(point, tuple):
        return "(" + ", ".join(f"{p:.4f}" for p in point) + ")"
    return f"{point:.4f}"
