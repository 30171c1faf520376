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
