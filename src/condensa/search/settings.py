"""Settings of the two-stage 1-D search (:class:`~condensa.search.two_stage.TwoStage`)."""

from __future__ import annotations

from dataclasses import dataclass

from condensa.errors import ConfigError


@dataclass(frozen=True)
class TwoStageSettings:
    """Settings of the 1-D search (defaults measured in ``benchmarks/search_efficiency.py``).

    Attributes:
        initial: initial trials, one uniformly drawn in each of ``initial`` equal
            slices of the bounds.
        gamma: ILS-UCB exploitation weight in ``[0, 1]``.
        beta: confidence multiplier of both acquisitions.
        level_set_tolerance: stage 1 is done when the posterior std of the largest
            feasible sparsity is below this (sparsity units).
        objective_tolerance: stage 2 is done when no candidate's UCB beats the best
            feasible trial by this fraction of the objective's observed range.
        feasible_probability: stage-2 candidates must be feasible with this probability.
        reserve: evaluations kept for stage 2 at the end of the budget when it still
            promises improvement.
        grid: candidate grid size; ``samples``: GP sample paths for the level set.
        decreasing: exploit that accuracy usually falls with sparsity: the level set
            sought is the end of the first feasible run. With False, the largest
            feasible sparsity anywhere (slower to pin down, correct for any shape).
        min_distance: no point closer than this (sparsity units) to an evaluated one is
            proposed, except an explicit replicate.
        replicates: most extra measurements of one point (the answer, or a contender it
            hinges on), chosen by the last-reading lookahead (never for deterministic
            evaluators).
        stop_early: stop before the budget when the level set is located and no
            candidate promises an improvement (saves compression runs).

    """

    initial: int = 3
    gamma: float = 0.9
    beta: float = 2.0
    level_set_tolerance: float = 0.004
    objective_tolerance: float = 0.01
    feasible_probability: float = 0.8
    reserve: int = 2
    grid: int = 201
    samples: int = 128
    decreasing: bool = True
    min_distance: float = 0.004
    replicates: int = 2
    stop_early: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma must lie in [0, 1], got {self.gamma!r}")
        if self.initial < 1 or self.grid < 3 or self.samples < 8:
            raise ConfigError("initial >= 1, grid >= 3 and samples >= 8 are required")
        if not 0.0 < self.feasible_probability < 1.0:
            raise ConfigError(
                f"feasible_probability must lie in (0, 1), got {self.feasible_probability!r}"
            )
