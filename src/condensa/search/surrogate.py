"""Gaussian-process surrogates (BoTorch) and what the search reads off them."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import torch

from condensa.threads import threads

DTYPE = torch.float64


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, restoring the previous count after.

    The search's tensors are tiny: thread start-up and contention with the user's
    training threads cost more than they save (measured: 3.5x faster fits). GPyTorch's
    jitter notices ("added jitter of 1e-08") are silenced inside too.
    """
    with threads(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not p.d., added jitter.*")
        warnings.filterwarnings("ignore", message=".*Very small noise values.*")
        yield


def fit_gp(
    x: torch.Tensor,
    y: torch.Tensor,
    noise: torch.Tensor | None = None,
    *,
    exact: bool = False,
    trend: bool = False,
) -> Any:
    """A BoTorch ``SingleTaskGP`` fitted by marginal likelihood.

    Args:
        x: `(n, d)` inputs in the unit cube.
        y: `(n,)` observations (standardized inside the model).
        noise: `(n,)` reported observation variances (standard errors squared), or None
            to infer one noise level. Reported errors are a floor, not the whole noise
            (timings and trainings vary more than their own spread shows): each point's
            variance is its reported one plus the homoscedastic noise a first fit
            infers, so points with large reported errors count less and nothing is
            trusted beyond what the data support.
        exact: the observations are noise-free (``noise`` ignored; a 1e-5 relative
            floor keeps the fit stable).
        trend: a quadratic prior mean (:func:`quadratic_mean`) instead of a constant
            one: far from the data the posterior follows the fitted trend (compression
            objectives mostly grow with sparsity) instead of reverting to the average,
            which GP-UCB would otherwise read as promise at the edges; and a noisy peak
            is located by the trend fitted to all trials, not by whichever reading near
            it happened to be high.

    Returns:
        The fitted model, in eval mode.

    """
    y = y.to(DTYPE).unsqueeze(-1)
    floor = 1e-5 * max(float(y.var()) if len(y) > 1 else 1.0, 1e-12)
    if exact:
        return _fit(x, y, torch.full_like(y, floor), trend)
    if noise is None:
        return _fit(x, y, None, trend)
    extra = noise_variance(_fit(x, y, None, trend))
    return _fit(x, y, (noise.to(DTYPE).unsqueeze(-1) + extra).clamp_min(floor), trend)


def _fit(x: torch.Tensor, y: torch.Tensor, yvar: torch.Tensor | None, trend: bool):  # type: ignore[no-untyped-def]
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    gp = SingleTaskGP(
        x.to(DTYPE),
        y,
        train_Yvar=yvar,
        outcome_transform=Standardize(m=1),
        mean_module=quadratic_mean(x.shape[-1]).to(DTYPE) if trend else None,
    )
    mll = ExactMarginalLogLikelihood(gp.likelihood, gp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optimizer chatter on tiny data sets
        with suppress(Exception):  # keep the prior hyperparameters if fitting fails
            fit_gpytorch_mll(mll)
    return gp.eval()


def quadratic_mean(dimensions: int) -> Any:
    """A GPyTorch prior mean ``b + Σ_i (w_i x_i + v_i x_i²)``, fitted with the GP.

    A GP with explicit basis functions (Rasmussen & Williams, §2.7): the kernel models
    what the trend does not. With a linear mean, a smooth kernel fitted to ten noisy
    readings of a peaked objective (throughput falling again past some sparsity) put
    its maximum wherever the noise did: within 0.02 of the true peak in 8 of 24 runs at
    10 % objective noise; with this mean in 19 (``benchmarks/search_efficiency.py``
    peaked problems, exact accuracy). Objectives that only grow (memory, step-like
    throughput) fit a near-linear trend.
    """
    from gpytorch.means import LinearMean

    class QuadraticMean(LinearMean):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(torch.cat([x, x.square()], dim=-1))

    return QuadraticMean(2 * dimensions)


def reported_variances(trials: Sequence[Any], key: str) -> torch.Tensor | None:
    """Per-trial variances from the standard errors the trials report under ``key``.

    None (infer one noise level) unless every trial reports a non-negative number.
    """
    errors = [t.extra.get(key) for t in trials]
    if not errors or not all(isinstance(e, (int, float)) and e >= 0 for e in errors):
        return None
    return torch.tensor(errors, dtype=DTYPE).square()


def noise_variance(gp) -> float:  # type: ignore[no-untyped-def]
    """The fitted homoscedastic observation variance, in the units of ``y``."""
    noise = getattr(gp.likelihood, "noise", None)
    if noise is None:
        return 0.0
    scale = float(gp.outcome_transform.stdvs.detach().squeeze()) ** 2
    return float(noise.detach().mean()) * scale


def observation_noise(gp, n: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """`(n,)` each training point's observation variance as fitted, in the units of ``y``.

    Reported errors plus the inferred extra noise (:func:`fit_gp`), or the one inferred level.
    """
    noise = getattr(gp.likelihood, "noise", None)
    if noise is None:
        return torch.zeros(n, dtype=DTYPE)
    scale = float(gp.outcome_transform.stdvs.detach().squeeze()) ** 2
    return (noise.detach().reshape(-1).to(DTYPE) * scale).expand(n).clone()


@dataclass(frozen=True)
class GridPosterior:
    """A GP's posterior on a grid: `(m,)` mean and standard deviation."""

    mean: torch.Tensor
    std: torch.Tensor


def posterior(gp, grid: torch.Tensor) -> GridPosterior:  # type: ignore[no-untyped-def]
    """Posterior mean and std of the latent function on `(m, d)` ``grid``."""
    with torch.no_grad():
        post = gp.posterior(grid.to(DTYPE))
        return GridPosterior(post.mean.squeeze(-1), post.variance.clamp_min(0).sqrt().squeeze(-1))


def noisy_objective(gp, y: torch.Tensor, reported: torch.Tensor | None) -> bool:  # type: ignore[no-untyped-def]
    """Whether objective readings are noisy.

    Any reported error (``reported``: variances) says so; without reports, a fitted
    noise above 1 % of the readings' variance (with ten trials a GP may still read
    noise as signal: objectives should report their standard errors, as Condensa's
    speed objectives do).
    """
    if reported is not None:
        return bool((reported > 0).any())
    return len(y) > 1 and noise_variance(gp) > 0.01 * float(y.var())


def sample_paths(gp, grid: torch.Tensor, samples: int, generator: torch.Generator):  # type: ignore[no-untyped-def]
    """``(mean, covariance, paths)`` of the GP's latent posterior on `(m, d)` ``grid``.

    ``paths`` is `(samples, m)`, drawn with ``generator`` (the global RNG is untouched).
    """
    with torch.no_grad():
        mvn = gp.posterior(grid.to(DTYPE)).mvn
        mean, cov = mvn.mean.reshape(-1), mvn.covariance_matrix
        cov = 0.5 * (cov + cov.T)
        jitter = 1e-9 * float(cov.diagonal().mean().clamp_min(1e-30))
        root, info = torch.linalg.cholesky_ex(cov + jitter * torch.eye(len(mean), dtype=DTYPE))
        if int(info) != 0:  # numerically indefinite: a symmetric square root instead
            values, vectors = torch.linalg.eigh(cov)
            root = vectors * values.clamp_min(0).sqrt()
        draws = torch.randn(samples, len(mean), generator=generator, dtype=DTYPE)
    return mean, cov, mean + draws @ root.T


@dataclass(frozen=True)
class LevelSet:
    """Where the largest feasible point lies, from GP sample paths on a 1-D grid.

    Attributes:
        p_feasible: fraction of sample paths with some feasible point.
        mean, std: of the largest feasible grid point over those paths (unit interval).
        low, high: its 2.5 % and 97.5 % quantiles.

    """

    p_feasible: float
    mean: float
    std: float
    low: float
    high: float


def largest_feasible(  # type: ignore[no-untyped-def]
    gp, grid: torch.Tensor, samples: int, seed: int, *, decreasing: bool = True, start: int = 0
) -> LevelSet:
    """Distribution of the largest feasible ``u`` under the GP on a 1-D ``grid``.

    With ``decreasing`` (accuracy falls with sparsity), each sample path's answer is
    the end of its first feasible run at or after grid index ``start`` (the largest
    point known to be feasible); otherwise its last feasible grid point.
    """
    from botorch.sampling import SobolQMCNormalSampler

    with torch.no_grad():
        post = gp.posterior(grid.to(DTYPE))
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([samples]), seed=seed)
        paths = sampler(post).squeeze(-1)  # (samples, m)
    feasible = paths >= 0
    any_feasible = feasible.any(dim=1)
    if not bool(any_feasible.any()):
        return LevelSet(0.0, float("nan"), float("nan"), float("nan"), float("nan"))
    m = grid.shape[0]
    if decreasing:
        # first infeasible point after the first feasible one, minus one
        feasible[:, :start] = True  # known feasible: a decreasing accuracy is feasible below
        first = feasible.to(torch.int64).argmax(dim=1)  # (samples,)
        after = torch.arange(m).unsqueeze(0) >= first.unsqueeze(1)
        stops = (~feasible) & after
        last = torch.where(
            stops.any(dim=1), stops.to(torch.int64).argmax(dim=1) - 1, torch.full_like(first, m - 1)
        )
    else:
        last = (m - 1) - torch.flip(feasible, dims=[1]).to(torch.int64).argmax(dim=1)
    values = grid[last[any_feasible], 0].to(DTYPE)
    return LevelSet(
        p_feasible=float(any_feasible.to(DTYPE).mean()),
        mean=float(values.mean()),
        std=float(values.std(unbiased=False)),
        low=float(torch.quantile(values, 0.025)),
        high=float(torch.quantile(values, 0.975)),
    )


def clip_margin(margin: torch.Tensor) -> torch.Tensor:
    """Clip margins to ``[-c, c]``, ``c`` twice the smaller extreme margin.

    ``c`` is twice the smaller of the largest positive and the largest negative margin.

    Accuracy collapses far past the level set (0.92 -> 0.3), and a stationary GP fitted
    to such a cliff becomes uncertain everywhere; clipping keeps every sign (so the
    level set is unchanged) while making the function the GP sees smooth near it.
    """
    positive, negative = margin[margin > 0], margin[margin < 0]
    if len(positive) == 0 or len(negative) == 0:
        return margin
    c = 2.0 * min(float(positive.max()), float(-negative.min()))
    return margin.clamp(-c, c)
