"""The last measurement of a noisy search: the one after which the expected answer is best.

With one evaluation left, an answer whose margin is within two standard errors is
measured again (:func:`in_doubt`): it is not handed over on a reading the noise could
have made. Otherwise the search can measure the stages' proposal, another open point
(a little inside the boundary, say, where a reading is likelier to be credible) or
replicate a *contender*: a trial measured feasible with a better objective that the
answer rule passed over because the accuracy model doubts it. Which is worth most
depends on the posterior, so each option is scored by a one-step
lookahead (the knowledge-gradient idea, Frazier et al. 2008, with the search's own answer
rule as the decision): the accuracy GP is conditioned on a fantasized reading at the
option (exact rank-one update, Gauss-Hermite quadrature over the reading), the answer
rule picks the answer from the trials plus that reading, and the option's value is the
expected ``P(answer feasible) x (objective(answer) - floor)``, the benchmark's reward
(an infeasible answer is worth nothing). Hyperparameters stay fixed, the objective
posterior is not updated (the reading's accuracy is what decides credibility).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from condensa.search.gp_data import GPData
from condensa.search.surrogate import DTYPE, observation_noise, posterior
from condensa.search.trial import Trial

NODES = 16
"""Gauss-Hermite nodes over the fantasized reading."""


@dataclass(frozen=True)
class Readings:
    """What the answer rule sees of the trials: the trials' data and their measurements.

    Attributes:
        x: `(n, 1)` unit sparsities of the usable trials (replicates repeat a point).
        margin: `(n,)` their measured margins (``accuracy - threshold``, clipped).
        variance: `(n,)` each reading's reported noise variance, or None: without reports
            the answer rule does not judge a point by its own readings.
        objective: `(n,)` the objective posterior mean at each trial (ranks answers).
        credible: the P(feasible) the answer rule asks for.
        monotone: the objective never falls with sparsity (the answer is the sparsest).
        answerable: `(n,)` False for known points, which are never the answer (None: all).

    """

    x: torch.Tensor
    margin: torch.Tensor
    variance: torch.Tensor | None
    objective: torch.Tensor
    credible: float
    monotone: bool
    answerable: torch.Tensor | None = None


def by_point(x: torch.Tensor) -> dict[float, list[int]]:
    """Indices of ``x`` (`(n, 1)` unit sparsities) by point: a trial and its replicates."""
    groups: dict[float, list[int]] = {}
    for i, u in enumerate(x[:, 0].tolist()):
        groups.setdefault(round(u, 9), []).append(i)
    return groups


def _cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-z / math.sqrt(2.0))


def _answer_value(
    p: torch.Tensor,
    observed: torch.Tensor,
    rank: torch.Tensor,
    value: torch.Tensor,
    credible: float,
) -> torch.Tensor:
    """Per fantasy (rows), ``P x value`` of the answer :func:`~condensa.search.choice.choose` picks.

    ``p``, ``observed`` (measured feasible), ``rank`` (larger is better) and ``value``
    are `(L, n)`; the rule: credible first, else P >= 0.5, else any observed-feasible.
    """
    chosen = torch.full(p.shape[:1], -1, dtype=torch.long)
    for level in (credible, min(credible, 0.5), -1.0):
        mask = observed & (p >= level)
        best = torch.where(mask, rank, -math.inf).argmax(dim=1)
        fill = (chosen < 0) & mask.any(dim=1)
        chosen = torch.where(fill, best, chosen)
    rows = torch.arange(len(chosen))
    safe = chosen.clamp_min(0)
    out = p[rows, safe] * value[rows, safe]
    return torch.where(chosen >= 0, out, torch.zeros_like(out))


def _measured(
    margins: torch.Tensor, variances: torch.Tensor, groups: dict, point: float, n: int
) -> torch.Tensor:
    """`(L, n + 1)` P(feasible) from each point's own readings, the new one (``n``) included.

    As :func:`~condensa.search.choice.measured_feasibility`.
    """
    members = {**groups}
    members[round(point, 9)] = [*groups.get(round(point, 9), []), n]
    out = torch.zeros_like(margins)
    for group in members.values():
        idx = torch.tensor(group)
        z = (
            margins[:, idx].mean(dim=1)
            / (variances[idx].mean() / len(group)).clamp_min(1e-24).sqrt()
        )
        out[:, idx] = _cdf(z)[:, None]
    return out


def fantasize(
    mean: torch.Tensor, cov: torch.Tensor, n: int, j: int, noise: float, nodes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The posterior after a reading at option ``j``, one row per fantasized value.

    ``mean`` and ``cov`` are the latent posterior over the ``n`` trials followed by the
    options; the reading at option ``j`` (noise variance ``noise``) is its predictive
    mean plus ``nodes`` predictive standard deviations. Returns the `(L, n + 1)` mean
    and `(n + 1,)` std at the trials and option ``j`` after it (a rank-one update:
    hyperparameters fixed), and the `(L,)` readings.
    """
    var_j = max(float(cov[n + j, n + j]), 0.0)
    scale = math.sqrt(max(var_j + noise, 1e-24))
    shift = torch.cat([cov[:n, n + j], torch.tensor([var_j], dtype=DTYPE)]) / scale
    base = torch.cat([mean[:n], mean[n + j : n + j + 1]])
    prior_var = torch.cat([cov.diagonal()[:n], torch.tensor([var_j], dtype=DTYPE)])
    post_mean = base + nodes[:, None] * shift
    post_std = (prior_var - shift.square()).clamp_min(1e-24).sqrt()
    return post_mean, post_std, mean[n + j] + scale * nodes


def lookahead_values(
    acc_gp: Any,
    readings: Readings,
    options: torch.Tensor,
    option_objective: torch.Tensor,
    option_variance: torch.Tensor,
) -> torch.Tensor:
    """Expected reward of the answer after one more reading at each option.

    Args:
        acc_gp: the fitted margin surrogate.
        readings: the trials as the answer rule sees them.
        options: `(k, 1)` unit sparsities to measure (a replicate repeats a trial's point).
        option_objective: `(k,)` the objective posterior mean at each option.
        option_variance: `(k,)` the noise variance a reading there would have.

    Returns:
        `(k,)` expected ``P(feasible) x (objective - floor)`` of the answer, with
        ``floor`` the lowest objective among answerable trials and options (every
        answer counts).

    """
    n = len(readings.x)
    points = torch.cat([readings.x, options]).to(DTYPE)
    with torch.no_grad():
        mvn = acc_gp.posterior(points).mvn
        mean, cov = mvn.mean.reshape(-1), mvn.covariance_matrix
    nodes_np, weights_np = np.polynomial.hermite_e.hermegauss(NODES)
    nodes = torch.tensor(nodes_np, dtype=DTYPE)
    weights = torch.tensor(weights_np / math.sqrt(2 * math.pi), dtype=DTYPE)
    answerable = readings.answerable
    if answerable is None:
        answerable = torch.ones(n, dtype=torch.bool)
    floor = float(torch.cat([readings.objective[answerable], option_objective]).min())
    groups = by_point(readings.x)
    values = []
    for j in range(len(options)):
        post_mean, post_std, reading = fantasize(mean, cov, n, j, float(option_variance[j]), nodes)
        p = _cdf(post_mean / post_std)
        margins = torch.cat([readings.margin.expand(NODES, n), reading[:, None]], dim=1)
        if readings.variance is not None:  # the answer rule's measured feasibility
            key = round(float(options[j, 0]), 9)
            reported = (
                readings.variance[groups[key][0]] if key in groups else readings.variance.mean()
            )
            variances = torch.cat([readings.variance, reported.reshape(1)])
            p = torch.maximum(p, _measured(margins, variances, groups, key, n))
        observed = (margins >= 0) & torch.cat([answerable, torch.ones(1, dtype=torch.bool)])
        objective = torch.cat([readings.objective, option_objective[j : j + 1]])
        x = torch.cat([readings.x[:, 0], options[j]])
        rank = (x if readings.monotone else objective).expand(NODES, n + 1)
        value = (objective - floor).expand(NODES, n + 1)
        reward = _answer_value(p, observed, rank, value, readings.credible)
        values.append(float((weights * reward).sum()))
    return torch.tensor(values, dtype=DTYPE)


def in_doubt(data: GPData, answer: int, acc_gp: Any, most: int) -> bool:
    """Whether the answer's mean margin is within two standard errors of the threshold.

    Its readings (the trial and its replicates, at most ``most`` + 1 of them to be
    measured again) are pooled; their error is the reported one, else the fitted noise.
    """
    group = by_point(data.x)[round(float(data.x[answer, 0]), 9)]
    if len(group) > most:
        return False
    variance = data.margin_noise
    if variance is None:
        variance = observation_noise(acc_gp, len(data.x))
    error = math.sqrt(float(variance[group].mean()) / len(group))
    return abs(float(data.margin[group].mean())) <= 2.0 * error


def replicable(x: torch.Tensor, most: int) -> list[int]:
    """One index per evaluated point measured at most ``most`` times (first reading's index)."""
    return [group[0] for group in by_point(x).values() if len(group) <= most]


def last_measurement(
    acc_gp: Any,
    obj_gp: Any,
    data: GPData,
    candidates: torch.Tensor,
    *,
    credible: float,
    monotone: bool,
    replicates: int,
    answer: int | None = None,
    most: int = 48,
) -> tuple[int | None, Trial | None]:
    """The most valuable last reading: ``(index in candidates, None)`` or ``(None, trial)``.

    Options: the ``candidates`` (`(m, 1)` new unit sparsities, thinned to ``most``, in
    order of preference on ties) and a replicate of every trial whose point was measured
    at most ``replicates`` times (never a known point). A reading's noise is the
    surrogate's (reported plus inferred): a replicate's that of its point, a new point's
    the mean. ``(None, None)`` when there is no option. The ``answer`` (index in
    ``data.trials``) is measured again first whenever its margin is within two
    standard errors (:func:`in_doubt`).
    """
    if answer is not None and in_doubt(data, answer, acc_gp, replicates):
        return None, data.trials[answer]
    answerable = torch.tensor([not t.known for t in data.trials], dtype=torch.bool)
    readings = Readings(data.x, data.margin, data.margin_noise, posterior(obj_gp, data.x).mean,
                        credible, monotone, answerable)  # fmt: skip
    noise = observation_noise(acc_gp, len(data.x))  # what a new reading's noise will be
    keep = torch.arange(len(candidates))
    if len(keep) > most:
        keep = torch.linspace(0, len(keep) - 1, most).round().long()
    again = [i for i in replicable(data.x, replicates) if not data.trials[i].known]
    options = torch.cat([candidates[keep].to(DTYPE), data.x[again]])
    if not len(options):
        return None, None
    objective = torch.cat([posterior(obj_gp, candidates[keep]).mean, readings.objective[again]])
    variance = torch.cat([noise.mean().expand(len(keep)), noise[again]])
    values = lookahead_values(acc_gp, readings, options, objective, variance).tolist()
    best = max(values)
    index = next(i for i, v in enumerate(values) if v >= best - 1e-12 * max(1.0, abs(best)))
    if index < len(keep):
        return int(keep[index]), None
    return None, data.trials[again[index - len(keep)]]
