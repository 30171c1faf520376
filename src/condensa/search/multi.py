"""Search over a vector of sparsities (one per layer group, d <= 8): constrained BO.

A GP per outcome (objective, clipped accuracy margin) and BoTorch's
``qLogNoisyExpectedImprovement`` with the accuracy constraint as an outcome
constraint, maximized with ``optimize_acqf`` over the unit cube.
"""

from __future__ import annotations

import torch

from condensa.search.constraint import Constraint
from condensa.search.surrogate import DTYPE, fit_gp, single_thread
from condensa.search.trial import Trial
from condensa.search.two_stage import clip_margin


def _objective_sample(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
    """The objective outcome of `(..., 2)` posterior samples."""
    return samples[..., 0]


def _constraint_sample(samples: torch.Tensor) -> torch.Tensor:
    """BoTorch constraints are feasible when <= 0: feasible when the margin is >= 0."""
    return -samples[..., 1]


class ConstrainedBO:
    """Proposes the next sparsity vector from the trials so far (deterministic given the seed).

    Args:
        bounds: one ``(low, high)`` pair per dimension.
        constraint: the accuracy constraint.
        seed: seeds the Sobol initial design and the acquisition optimization.
        initial: size of the initial Sobol design (default ``2 d + 1``).

    """

    def __init__(
        self,
        bounds: list[tuple[float, float]],
        constraint: Constraint,
        seed: int,
        initial: int | None = None,
    ) -> None:
        from torch.quasirandom import SobolEngine

        self.bounds = bounds
        self.constraint = constraint
        self.seed = seed
        d = len(bounds)
        self.initial = initial if initial is not None else 2 * d + 1
        self.design = SobolEngine(d, scramble=True, seed=seed).draw(self.initial).to(DTYPE)
        self.low = torch.tensor([b[0] for b in bounds], dtype=DTYPE)
        self.span = torch.tensor([b[1] - b[0] for b in bounds], dtype=DTYPE)

    def set_budget_left(self, remaining: int) -> None:
        """Unused: constrained qLogNEI has no stages."""

    def to_point(self, u: torch.Tensor) -> tuple[float, ...]:
        """Unit cube -> sparsities (rounded to 1e-6 so journals hold short numbers)."""
        return tuple(round(float(v), 6) for v in self.low + u * self.span)

    def propose(self, trials: list[Trial]) -> tuple[tuple[float, ...], str] | None:
        """The next point: from the Sobol design, then from the acquisition."""
        n = len(trials)
        if n < self.initial:
            return self.to_point(self.design[n]), "initial"
        with single_thread():
            return self._acquire(trials), "bo"

    def _acquire(self, trials: list[Trial]) -> tuple[float, ...]:
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.models import ModelListGP
        from botorch.optim import optimize_acqf

        ok = [t for t in trials if not t.failed]
        if len(ok) < 2:
            generator = torch.Generator().manual_seed(self.seed + len(trials))
            return self.to_point(torch.rand(len(self.bounds), generator=generator, dtype=DTYPE))
        torch.manual_seed(self.seed + len(trials))
        x = torch.stack(
            [(torch.tensor(t.sparsity, dtype=DTYPE) - self.low) / self.span for t in ok]
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
