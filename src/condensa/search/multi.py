"""Search over a vector of sparsities (one per layer group, d <= 8): constrained BO.

A GP per outcome (objective, clipped accuracy margin) and BoTorch's
``qLogNoisyExpectedImprovement`` with the accuracy constraint as an outcome
constraint, maximized with ``optimize_acqf`` over the unit cube. Known points
(:attr:`SearchProblem.known`) join the trials in the GPs' data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from condensa.search.proposer import Proposal, SearchProblem, register_strategy
from condensa.search.surrogate import DTYPE, clip_margin, fit_gp, single_thread
from condensa.search.trial import Point, Trial


def _objective_sample(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
    """The objective outcome of `(..., 2)` posterior samples."""
    return samples[..., 0]


def _constraint_sample(samples: torch.Tensor) -> torch.Tensor:
    """BoTorch constraints are feasible when <= 0: feasible when the margin is >= 0."""
    return -samples[..., 1]


@register_strategy("bo")
class ConstrainedBO:
    """Constrained qLogNEI over a sparsity vector (deterministic given the seed).

    Args:
        problem: ``problem.bounds`` holds one ``(low, high)`` pair per dimension;
            ``problem.settings`` may be an int: the size of the initial Sobol design
            (default ``2 d + 1``).

    """

    def __init__(self, problem: SearchProblem) -> None:
        from torch.quasirandom import SobolEngine

        bounds = list(problem.bounds)
        self.problem = problem
        self.bounds = bounds
        self.constraint = problem.constraint
        self.seed = problem.seed
        d = len(bounds)
        initial = problem.settings if isinstance(problem.settings, int) else None
        self.initial = initial if initial is not None else 2 * d + 1
        self.design = SobolEngine(d, scramble=True, seed=self.seed).draw(self.initial).to(DTYPE)
        self.low = torch.tensor([b[0] for b in bounds], dtype=DTYPE)
        self.span = torch.tensor([b[1] - b[0] for b in bounds], dtype=DTYPE)

    def to_point(self, u: torch.Tensor) -> Point:
        """Unit cube -> sparsities (rounded to 1e-6 so journals hold short numbers)."""
        values = tuple(round(float(v), 6) for v in self.low + u * self.span)
        return values[0] if len(values) == 1 else values

    def propose(self, trials: Sequence[Trial], *, budget_left: int, q: int = 1) -> list[Proposal]:
        """The next point: from the Sobol design, then from the acquisition."""
        n = len(trials)
        if n < self.initial:
            return [Proposal(self.to_point(self.design[n]), "initial")]
        with single_thread():
            return [Proposal(self._acquire(list(trials)), "bo")]

    def _acquire(self, trials: list[Trial]) -> Point:
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.models import ModelListGP
        from botorch.optim import optimize_acqf

        ok = [t for t in [*self.problem.known, *trials] if not t.failed]  # known ones first
        if len(ok) < 2:
            generator = torch.Generator().manual_seed(self.seed + len(trials))
            return self.to_point(torch.rand(len(self.bounds), generator=generator, dtype=DTYPE))
        torch.manual_seed(self.seed + len(trials))
        x = torch.stack(
            [(torch.tensor(t.sparsity, dtype=DTYPE).reshape(-1) - self.low) / self.span for t in ok]
        )
        objective = torch.tensor([t.objective for t in ok], dtype=DTYPE)
        margin = clip_margin(
            torch.tensor([self.constraint.margin(t.accuracy) for t in ok], dtype=DTYPE)  # type: ignore[arg-type]
        )
        model = ModelListGP(fit_gp(x, objective), fit_gp(x, margin))
        acquisition = qLogNoisyExpectedImprovement(
            model,
            X_baseline=x,
            objective=GenericMCObjective(_objective_sample),
            constraints=[_constraint_sample],
        )
        d = len(self.bounds)
        unit = torch.stack([torch.zeros(d, dtype=DTYPE), torch.ones(d, dtype=DTYPE)])
        candidate, _ = optimize_acqf(
            acquisition,
            bounds=unit,
            q=1,
            num_restarts=4,
            raw_samples=128,
            options={"maxiter": 100, "seed": self.seed + len(trials)},
        )
        return self.to_point(candidate[0])
