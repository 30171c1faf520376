"""The boundary is refined only where it can decide the answer.

Invariants: when the objective peaks well inside the feasible region, locating the
largest feasible sparsity more precisely cannot change the answer, so a noisy search
spends its trials on the objective and lands on the peak; with a monotone objective (or
one still rising at the boundary) the boundary keeps deciding.
"""

import numpy as np
import pytest
import torch

from condensa.search import TwoStageSettings, search_sparsity
from condensa.search.acquisition import boundary_can_win
from tests.search.conftest import logistic_accuracy

FAST = TwoStageSettings(grid=201, samples=64)
U = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)


def test_a_peak_far_inside_rules_the_boundary_out():
    mean = 2.0 - 8.0 * (U - 0.45) ** 2
    std = torch.full_like(U, 0.02)
    band, inside = (U >= 0.62) & (U <= 0.66), U < 0.62
    assert not boundary_can_win(mean, std, band, inside, beta=2.0)


@pytest.mark.parametrize("std", [0.02, 0.5])
def test_a_rising_objective_or_an_uncertain_one_keeps_the_boundary(std):
    band, inside = (U >= 0.62) & (U <= 0.66), U < 0.62
    rising = 1.0 / (1.0 - U.clamp(max=0.99))
    assert boundary_can_win(rising, torch.full_like(U, std), band, inside, beta=2.0)
    peaked = 2.0 - 8.0 * (U - 0.45) ** 2
    if std > 0.1:  # a flat-ish posterior cannot rule anything out
        assert boundary_can_win(peaked, torch.full_like(U, std), band, inside, beta=2.0)


def test_nothing_credible_inside_keeps_the_boundary():
    mean = 2.0 - 8.0 * (U - 0.45) ** 2
    band = (U >= 0.62) & (U <= 0.66)
    assert boundary_can_win(mean, torch.zeros_like(U), band, torch.zeros_like(band), beta=2.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_noisy_accuracy_and_an_inner_peak_spend_the_budget_on_the_peak(seed):
    """Accuracy noise 0.3 points, boundary near 0.69, objective peak at 0.45."""
    rng = np.random.default_rng(seed)

    def evaluate(s):
        accuracy = 100 * logistic_accuracy(s) + rng.normal(0.0, 0.3)
        return {"accuracy": accuracy, "objective": 2.0 - 8.0 * (s - 0.45) ** 2,
                "accuracy_se": 0.3}  # fmt: skip

    result = search_sparsity(evaluate, accuracy_threshold=91.0, budget=10, bounds=(0.0, 0.99),
                             seed=seed, settings=FAST)  # fmt: skip
    assert result.best is not None
    assert abs(result.best.sparsity - 0.45) <= 0.02
    objective = [t for t in result.trials if t.stage == "objective"]
    assert len(objective) >= 4
