"""The usable trials of a 1-D search as GP training data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from condensa.search.surrogate import DTYPE, clip_margin, reported_variances
from condensa.search.trial import Trial


@dataclass(frozen=True)
class GPData:
    """Unit sparsities, clipped margins, objectives and their reported variances.

    Attributes:
        trials: the trials that did not fail, in order.
        x: `(n, 1)` their sparsities mapped to the unit interval.
        margin: `(n,)` accuracy margins, clipped (:func:`~condensa.search.surrogate.clip_margin`).
        objective: `(n,)` objective readings.
        margin_noise, objective_noise: `(n,)` reported variances, or None (infer one level).

    """

    trials: list[Trial]
    x: torch.Tensor
    margin: torch.Tensor
    objective: torch.Tensor
    margin_noise: torch.Tensor | None
    objective_noise: torch.Tensor | None


def gp_data(
    trials: Sequence[Trial], to_unit: Callable[[float], float], margin: Callable[[float], float]
) -> GPData:
    """The trials that did not fail as :class:`GPData` (``to_unit`` maps a sparsity)."""
    ok = [t for t in trials if not t.failed]
    x = torch.tensor([[to_unit(float(t.sparsity))] for t in ok], dtype=DTYPE)  # type: ignore[arg-type]
    raw = torch.tensor([margin(t.accuracy) for t in ok], dtype=DTYPE)  # type: ignore[arg-type]
    clipped = clip_margin(raw)
    margin_noise = reported_variances(ok, "accuracy_se")
    if margin_noise is not None:
        # a clipped margin is the reading shrunk by c / |m|: its error shrinks alike
        shrink = torch.where(raw != 0, clipped / raw, torch.ones_like(raw))
        margin_noise = margin_noise * shrink.square()
    objective = torch.tensor([t.objective for t in ok], dtype=DTYPE)
    return GPData(ok, x, clipped, objective, margin_noise, reported_variances(ok, "objective_se"))
