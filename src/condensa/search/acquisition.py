"""Acquisition rules of the two stages, on posteriors evaluated over candidate grids."""

from __future__ import annotations

import torch


def ils_ucb(mean: torch.Tensor, std: torch.Tensor, *, gamma: float, beta: float) -> torch.Tensor:
    """Implicit level-set UCB on a margin posterior (the level set is ``margin = 0``).

    ``(1 - γ) β σ(u) - γ |μ(u)|``: large where the level set is uncertain (σ) and where
    it is believed to be (``|μ|`` small). ``γ`` trades exploration (0: pure variance)
    for exploitation (1: pure "straddle on the estimated crossing").

    Args:
        mean: `(m,)` posterior mean of the margin ``accuracy - threshold``.
        std: `(m,)` its posterior standard deviation.
        gamma: in ``[0, 1]``.
        beta: confidence multiplier of σ.

    Returns:
        `(m,)` acquisition values (larger is better).

    """
    return (1.0 - gamma) * beta * std - gamma * mean.abs()


def ucb(mean: torch.Tensor, std: torch.Tensor, *, beta: float) -> torch.Tensor:
    """GP-UCB ``μ + β σ`` for maximization."""
    return mean + beta * std


def probability_feasible(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``P(margin >= 0)`` under a Gaussian posterior."""
    normal = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    return normal.cdf(mean / std.clamp_min(1e-12))


def boundary_can_win(
    mean: torch.Tensor,
    std: torch.Tensor,
    band: torch.Tensor,
    inside: torch.Tensor,
    *,
    beta: float,
) -> bool:
    """Whether the objective's optimum may lie in the uncertain boundary ``band``.

    False when the best upper confidence bound ``μ + βσ`` over ``band`` is below the
    best lower bound ``μ - βσ`` over ``inside`` (credibly feasible points short of the
    band): then locating the boundary more precisely cannot change the answer (a
    peaked objective whose peak lies well inside the feasible region), and trials are
    better spent on the objective.

    Args:
        mean: `(m,)` posterior mean of the objective on the grid.
        std: `(m,)` its posterior standard deviation.
        band: `(m,)` bool, where the largest feasible point may lie.
        inside: `(m,)` bool, credibly feasible points below the band.
        beta: confidence multiplier.

    """
    if not bool(band.any()) or not bool(inside.any()):
        return True
    upper = float((mean + beta * std)[band].max())
    lower = float((mean - beta * std)[inside].max())
    return upper >= lower
