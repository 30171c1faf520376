"""The final comparison: a speed search's credible contenders timed side by side.

Invariants: only the trials the answer was chosen from compete (one per sparsity, the
answer first, at most three); the fastest by the side-by-side timing becomes the answer
and every reading is recorded; nothing changes without a comparing objective or with
fewer than two models; Throughput.compare times every candidate in every round.
"""

import pytest
import torch
from torch import nn

from condensa.contenders import contenders, final_comparison
from condensa.objectives import Measurement, Throughput
from condensa.search import Constraint, SearchResult
from condensa.search.trial import Trial


def _result(best: int = 1) -> SearchResult:
    trials = [
        Trial(0, 0.2, 0.99, 1.2, True),
        Trial(1, 0.5, 0.99, 4.0, True),
        Trial(2, 0.7, 0.99, 2.5, True),
        Trial(3, 0.7, 0.99, 2.6, True, "replicate"),
        Trial(4, 0.75, 0.985, 9.0, True),  # measured feasible, not a candidate
        Trial(5, 0.9, 0.5, 9.0, False),
    ]
    return SearchResult(trials[best], trials, Constraint(0.98), extra={"candidates": [0, 1, 2, 3]})


class _Fixed:
    """A speed objective whose side-by-side readings are given."""

    def __init__(self, speed):
        self.speed, self.calls = speed, []

    def compare(self, reference, candidates, example_inputs, *, rounds, seconds):
        self.calls.append((sorted(candidates), rounds))
        return {s: Measurement.of([self.speed[s]] * rounds, "x") for s in candidates}


def test_contenders_are_candidates_one_per_sparsity_answer_first():
    chosen = contenders(_result())
    assert [t.index for t in chosen] == [1, 2, 0]  # mean reading 2.55 at 0.7 beats 1.2
    assert all(t.index != 4 for t in chosen)
    assert [t.index for t in contenders(_result(), most=2)] == [1, 2]


def test_the_fastest_contender_side_by_side_becomes_the_answer():
    objective = _Fixed({0.2: 1.2, 0.5: 4.4, 0.7: 4.9})
    models = {s: nn.Linear(2, 2) for s in (0.2, 0.5, 0.7)}
    result = final_comparison(_result(), objective, nn.Linear(2, 2), models.get, None, rounds=7)
    assert objective.calls == [([0.2, 0.5, 0.7], 7)]
    assert result.best is not None and result.best.index == 2
    record = {r["sparsity"]: r["objective_value"] for r in result.extra["final_comparison"]}
    assert record == {0.2: 1.2, 0.5: 4.4, 0.7: 4.9}
    assert "0.7000 ran at 4.9x" in result.extra["answer_note"]
    assert result.extra["candidates"] == [0, 1, 2, 3]  # the rest of extra is kept


def test_the_answer_stays_when_it_is_the_fastest():
    objective = _Fixed({0.2: 1.2, 0.5: 5.0, 0.7: 4.9})
    models = {s: nn.Linear(2, 2) for s in (0.2, 0.5, 0.7)}
    result = final_comparison(_result(), objective, nn.Linear(2, 2), models.get, None)
    assert result.best is not None and result.best.index == 1
    assert "answer_note" not in result.extra and len(result.extra["final_comparison"]) == 3


@pytest.mark.parametrize(
    ("objective", "at_hand"),
    [(object(), (0.2, 0.5, 0.7)), (_Fixed({}), (0.5,)), (_Fixed({}), (0.2, 0.7))],
)
def test_nothing_changes_without_comparison_or_models(objective, at_hand):
    """An objective that cannot compare, only the answer's model, or not the answer's."""
    before = _result()
    models = {s: nn.Linear(2, 2) for s in at_hand}
    after = final_comparison(before, objective, nn.Linear(2, 2), models.get, None)
    assert after is before


def test_throughput_compare_times_every_candidate_in_every_round():
    torch.manual_seed(0)
    big = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 64))
    small = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 64))
    timer = Throughput(batch_size=32, warmup=1, repeats=3, threads=1)
    x = torch.randn(1, 64)
    readings = timer.compare(big, {"same": big, "small": small}, x, rounds=4)
    assert set(readings) == {"same", "small"}
    assert all(len(m.samples) == 4 and m.unit == "x" for m in readings.values())
    assert len(timer.relative(big, small, x, rounds=3).samples) == 3
    hurried = timer.compare(big, {"small": small}, x, rounds=50, seconds=0.0)
    assert len(hurried["small"].samples) == 2  # out of time: the two rounds always run
