"""An answer whose feasibility is in doubt says so (result.extra["caution"] and the summary)."""

from __future__ import annotations

import math

import pytest

from condensa.search import search_sparsity

THRESHOLD = 90.0


def _hovering(se: float):
    """Readings 0.1 points below the threshold on average, 0.3 either way, with error ``se``."""

    def evaluate(s: float) -> dict:
        return {
            "accuracy": THRESHOLD - 0.1 + 0.3 * math.sin(37.0 * s),
            "objective": 1.0 + s,
            "accuracy_se": se,
        }

    return evaluate


def _search(evaluate, **kwargs):
    return search_sparsity(
        evaluate, accuracy_threshold=THRESHOLD, budget=8, bounds=(0.0, 0.9), seed=0, **kwargs
    )


def test_an_answer_no_trial_credibly_supports_carries_a_caution():
    """At most a fifth of an error above the threshold: feasible as read, not credibly."""
    result = _search(_hovering(1.0))
    assert result.best is not None and result.best.feasible  # still answered, as measured
    caution = result.extra["caution"]
    assert caution.startswith("no trial is credibly feasible: the highest P(feasible)")
    strongest = float(caution.split("is ")[2].split(" <")[0])
    assert 0.5 <= strongest < 0.8  # the number it names is the evidence, below the bar
    assert result.summary().endswith(f"; caution: {caution}")


@pytest.mark.parametrize(
    ("se", "deterministic"),
    [(0.01, False), (1.0, True)],
    ids=["readings-30-errors-above", "deterministic-evaluator"],
)
def test_no_caution_when_the_evidence_is_strong_or_exact(se, deterministic):
    """Readings far above their error, or an exact evaluator: the answer stands unqualified."""
    result = _search(_hovering(se), deterministic=deterministic)
    assert result.best is not None
    assert "caution" not in result.extra
    assert "caution" not in result.summary()


def test_no_caution_when_nothing_is_feasible():
    """Every reading below the threshold: no answer, so nothing to qualify."""
    result = _search(
        lambda s: {"accuracy": THRESHOLD - 1.0 - s, "objective": s, "accuracy_se": 0.1}
    )
    assert result.best is None and "caution" not in result.extra
