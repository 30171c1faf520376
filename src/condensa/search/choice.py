"""The two-stage search's answer rule: credibly feasible, then the best posterior objective."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from condensa.search.acquisition import probability_feasible
from condensa.search.surrogate import posterior, reported_variances
from condensa.search.trial import Trial


def choose(
    trials: list[Trial],
    x: torch.Tensor,
    acc_gp: Any,
    obj_gp: Any,
    credible: float,
    *,
    monotone: bool,
    measured: torch.Tensor | None = None,
) -> tuple[int | None, str, list[int], str]:
    """The answer's index, why the best measured trial lost, the candidates, a caution.

    The index and the candidates (those the answer was chosen from) index ``trials``.

    The caution is empty unless no observed-feasible trial reaches ``credible``: then it
    says so, with the highest P(feasible) among them, for the user to see beside the
    answer (it meets the constraint in its readings, but the evidence is weak).

    Among observed-feasible trials the accuracy GP deems feasible with probability at
    least ``credible`` (else at least 0.5, else all observed-feasible trials), the one
    with the highest posterior objective mean (the sparsest when the objective is
    ``monotone``): a single lucky reading of a noisy objective or accuracy does not
    decide the answer. ``credible=0`` (a deterministic evaluator: an observed-feasible
    trial *is* feasible) keeps every observed-feasible trial.

    Args:
        trials: the usable trials.
        x: their unit sparsities, ``(n, 1)``.
        acc_gp: the fitted margin surrogate.
        obj_gp: the fitted objective surrogate.
        credible: the P(feasible) a candidate needs first.
        monotone: the objective never falls with sparsity.
        measured: per trial, P(feasible) from its own readings
            (:func:`measured_feasibility`): a trial measured far above the threshold is
            credible even where a smooth surrogate doubts it (next to an accuracy cliff).

    """
    acc = posterior(acc_gp, x)
    obj = posterior(obj_gp, x)
    p = probability_feasible(acc.mean, acc.std)
    if measured is not None:
        p = torch.maximum(p, measured.to(p.dtype))
    observed = [i for i, t in enumerate(trials) if t.feasible and not t.known]
    level = credible
    for level in dict.fromkeys((credible, min(credible, 0.5))):
        candidates = [i for i in observed if float(p[i]) >= level]
        if candidates:
            break
    else:
        candidates = observed
    if not candidates:
        return None, "", [], ""
    strongest = max(float(p[i]) for i in observed)
    caution = (
        ""
        if credible <= 0 or strongest >= credible
        else f"no trial is credibly feasible: the highest P(feasible) among those measured "
        f"feasible is {strongest:.2f} < {credible:g}, so the answer rests on its own "
        "readings; evaluate it again before relying on it"
    )
    if monotone:  # the objective never falls: the sparsest credible trial
        chosen = max(candidates, key=lambda i: (float(x[i, 0]), -i))
    else:
        chosen = max(candidates, key=lambda i: (float(obj.mean[i]), -i))
    top = max(observed, key=lambda i: (trials[i].objective or 0.0, -i))
    why = (
        "" if float(x[top, 0]) == float(x[chosen, 0])
        else "its posterior objective is lower: one high reading does not decide"
        if top in candidates
        else f"the accuracy model gives it P(feasible) = {float(p[top]):.2f} < {level}: "
        "its margin is within the noise of nearby trials"
    )  # fmt: skip
    return chosen, why, candidates, caution


def measured_feasibility(
    trials: list[Trial], margin: Callable[[float], float]
) -> torch.Tensor | None:
    """Per trial, ``P(margin >= 0)`` from the readings at its point alone.

    The answer is a trial's own model, so its own readings (their error is the
    evaluation's) say whether *it* meets the constraint; the GP, which pools models
    compressed at nearby sparsities, also carries their training-to-training spread.

    The readings at one sparsity (a trial and its replicates) are averaged, their
    standard error is the reported ``accuracy_se`` over the square root of their number.
    None when a trial reports no standard error.
    """
    variances = reported_variances(trials, "accuracy_se")
    if variances is None:
        return None
    readings: dict[float, list[tuple[float, float]]] = {}
    for t, v in zip(trials, variances.tolist(), strict=True):
        readings.setdefault(float(t.sparsity), []).append((margin(float(t.accuracy)), v))  # type: ignore[arg-type]
    out = []
    for t in trials:
        group = readings[float(t.sparsity)]  # type: ignore[arg-type]
        mean = sum(m for m, _ in group) / len(group)
        se = (sum(v for _, v in group) / len(group)) ** 0.5 / len(group) ** 0.5
        z = torch.tensor(mean / se if se > 0 else (math.inf if mean >= 0 else -math.inf))
        out.append(float(torch.distributions.Normal(0.0, 1.0).cdf(z.clamp(-40, 40))))
    return torch.tensor(out)
