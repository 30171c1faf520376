"""How L-C spends its step budget and grows its penalty weight μ.

:class:`MuSchedule` gives μ for each iteration from the history of the iterations
before it (a pure function, so a resumed run repeats an uninterrupted one);
:func:`split_budget` divides a total number of training steps between the L steps and
the final fine-tuning of θ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from condensa.errors import ConfigError, check_int

MU_SCHEDULES = ("adaptive", "geometric")
"""How μ grows between L-C iterations (see :class:`MuSchedule`)."""


def split_budget(budget: int, iterations: int, fraction: float) -> tuple[int, int, int]:
    """``(steps, first_steps, finetune_steps)`` spending exactly ``budget`` steps.

    ``fraction`` of the budget fine-tunes θ at the end; the rest is split evenly over
    the ``iterations`` L steps, the first taking the remainder.

    Raises:
        ConfigError: a budget that is not a positive integer or too small, or a
            fraction outside ``[0, 1)``.

    """
    check_int("budget", budget)
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise ConfigError(f"finetune_fraction must be in [0, 1), got {fraction!r}")
    finetune = round(budget * fraction)
    steps = (budget - finetune) // iterations
    if steps < 1:
        raise ConfigError(
            f"budget {budget} is too small for {iterations} L-C iterations "
            f"(and {finetune} fine-tuning steps)"
        )
    return steps, steps + (budget - finetune - steps * iterations), finetune


@dataclass(frozen=True)
class MuSchedule:
    """μ per L-C iteration.

    Args:
        iterations: number of L-C iterations after direct compression (``K``).
        kind: ``"adaptive"`` grows μ after each iteration by the factor that, if
            ‖w − θ‖ falls like 1/μ, brings ‖w − θ‖/‖θ‖ under ``tolerance`` by the last
            iteration (between 1 and ``multiplier_max``); ``"geometric"`` is the
            paper's fixed ``μ_j = init · multiplier^(j−1)``.
        init: μ of the first L step (``μ0``).
        multiplier: ``a`` of the geometric schedule (at least 1).
        maximum: cap on μ.
        tolerance: target of ‖w − θ‖/‖θ‖ at the last iteration (adaptive).
        multiplier_max: largest per-iteration growth of the adaptive μ.

    """

    iterations: int
    kind: str = "adaptive"
    init: float = 1e-3
    multiplier: float = 1.1
    maximum: float = 1e4
    tolerance: float = 1e-2
    multiplier_max: float = 10.0

    def __post_init__(self) -> None:
        init = self.init
        if not (isinstance(init, (int, float)) and math.isfinite(init) and init > 0):
            raise ConfigError(f"mu_init must be a positive number, got {init!r}")
        if not (isinstance(self.multiplier, (int, float)) and self.multiplier >= 1):
            raise ConfigError(f"mu_multiplier must be >= 1, got {self.multiplier!r}")
        if not (isinstance(self.maximum, (int, float)) and self.maximum >= init):
            raise ConfigError(f"mu_max must be >= mu_init ({init}), got {self.maximum!r}")
        if self.kind not in MU_SCHEDULES:
            raise ConfigError(
                f"unknown mu_schedule {self.kind!r}; valid: {', '.join(MU_SCHEDULES)}"
            )
        if not (isinstance(self.tolerance, (int, float)) and 0 < self.tolerance < 1):
            raise ConfigError(f"tolerance must be a number in (0, 1), got {self.tolerance!r}")
        if not (isinstance(self.multiplier_max, (int, float)) and self.multiplier_max >= 1):
            raise ConfigError(f"mu_multiplier_max must be >= 1, got {self.multiplier_max!r}")

    def geometric(self, iteration: int) -> float:
        """μ of ``iteration`` on the geometric schedule (0 for direct compression)."""
        if iteration == 0:
            return 0.0
        return float(min(self.init * self.multiplier ** (iteration - 1), self.maximum))

    def at(self, iteration: int, history: Sequence[dict[str, float]]) -> float:
        """μ of ``iteration`` given the records of the iterations before it.

        Adaptive: ``μ_j = μ_{j−1} · clip((r / tol)^(1 / (e · (K − j + 1))), 1, a_max)``
        where ``r`` is the last ‖w − θ‖ / ‖θ‖ and ``e`` how fast it has been falling
        with μ (``r ∝ μ^−e``, measured over the last two iterations, 1 until then,
        kept in [0.5, 1]: never bet on a faster fall).
        """
        if self.kind == "geometric" or iteration <= 1:
            return self.geometric(iteration)
        last = history[-1]
        relative = max(last.get("relative_distance", 0.0), 1e-12)
        elasticity = 1.0
        if len(history) >= 3 and history[-2].get("mu", 0.0) > 0:
            before = history[-2]
            mu_ratio = last["mu"] / before["mu"]
            if mu_ratio > 1.0 and before.get("relative_distance", 0.0) > 0:
                falling = math.log(before["relative_distance"] / relative) / math.log(mu_ratio)
                elasticity = min(max(falling, 0.5), 1.0)
        remaining = self.iterations - iteration + 1
        factor = (relative / self.tolerance) ** (1.0 / (elasticity * remaining))
        factor = min(max(factor, 1.0), self.multiplier_max)
        return float(min(last["mu"] * factor, self.maximum))
