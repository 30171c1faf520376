"""Acquisition rules of the two stages, on posteriors evaluated over candidate grids."""

from __future__ import annotations

import math

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


def argmax_spread(
    mean: torch.Tensor,
    cov: torch.Tensor,
    paths: torch.Tensor,
    noise: float,
    candidates: torch.Tensor,
    region: torch.Tensor,
    x: torch.Tensor,
    *,
    fantasies: int = 8,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Expected posterior variance of the objective's argmax after one more trial.

    For each candidate grid index ``c`` the GP sample ``paths`` are conditioned on a
    fantasized reading ``y`` at ``c`` by Matheron's rule (``f + Σ[:, c] / (Σ[c, c] + σ²)
    · (y - f(c) - ε)``), and the variance of their argmax over ``region`` is averaged
    over the fantasies. Small where a trial would pin down *where* the optimum lies
    (the flanks of a peak), not merely where the objective is high.

    Args:
        mean: `(m,)` posterior mean of the objective on the grid.
        cov: `(m, m)` its posterior covariance.
        paths: `(J, m)` posterior sample paths.
        noise: observation variance of a new reading.
        candidates: `(C,)` grid indices to score.
        region: `(m,)` bool, where the optimum may lie (credibly feasible).
        x: `(m,)` grid coordinates.
        fantasies: fantasized readings per candidate.
        generator: for the fantasies' and readings' normal draws.

    Returns:
        `(C,)` expected argmax variances (smaller is better).

    """
    j = paths.shape[0]
    z = torch.randn(fantasies, 1, generator=generator, dtype=cov.dtype)
    eps = torch.randn(1, j, generator=generator, dtype=cov.dtype) * noise**0.5
    outside = torch.where(region, 0.0, -math.inf).to(cov.dtype)
    out = []
    for c in candidates.tolist():
        spread = (cov[c, c] + noise).clamp_min(1e-18)
        gain = cov[:, c] / spread  # (m,)
        y = mean[c] + z * spread.sqrt()  # (I, 1) fantasized readings
        updated = paths.unsqueeze(0) + (y - paths[:, c].unsqueeze(0) - eps).unsqueeze(-1) * gain
        loc = x[(updated + outside).argmax(dim=-1)]  # (I, J)
        out.append(float(loc.var(dim=-1).mean()))
    return torch.tensor(out, dtype=cov.dtype)


def locating_index(  # type: ignore[no-untyped-def]
    gp, grid: torch.Tensor, region: torch.Tensor, candidates: torch.Tensor, generator
) -> int:
    """Grid index of the candidate after which the argmax is expected least uncertain.

    :func:`argmax_spread` over (at most 64 of) the ``candidates`` (`(m,)` bool), with the
    optimum sought in ``region``: the objective step for a noisy objective, whose
    answer is the evaluated point the posterior ranks highest, so what matters is
    *where* the optimum lies (GP-UCB samples where the objective is high, and near a
    flat peak that says little about where it is).
    """
    from condensa.search.surrogate import noise_variance, sample_paths

    mean, cov, paths = sample_paths(gp, grid, 64, generator)
    index = torch.nonzero(candidates).squeeze(-1)
    index = index[:: max(1, len(index) // 64)]
    x = grid[:, 0].to(cov.dtype)
    spread = argmax_spread(
        mean, cov, paths, noise_variance(gp), index, region, x, generator=generator
    )
    return int(index[int(spread.argmin())])
