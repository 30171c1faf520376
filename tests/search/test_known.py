"""Known points: observations given before the search (the uncompressed model).

Invariants: they cost no evaluation, are never answered, proposed again or replicated;
the two-stage surrogates learn from them (a noisy speedup anchored at 1.0x where the
model is not compressed is not extrapolated upward toward the dense model); malformed
ones are refused with the value named, before anything is evaluated.
"""

import pytest

from condensa import ConfigError
from condensa.search import Constraint, SearchProblem, search_sparsity
from condensa.search.gp_data import gp_data
from condensa.search.lookahead import last_measurement
from condensa.search.proposer import private_rng
from condensa.search.surrogate import fit_gp
from condensa.search.trial import Trial
from condensa.search.two_stage import TwoStage
from tests.search.conftest import logistic_accuracy

DENSE = {"sparsity": 0.0, "accuracy": 0.92, "objective": 1.0}


@pytest.fixture(autouse=True)
def _own_rng():
    """Strategies called directly seed torch: give later tests the state they would get."""
    with private_rng():
        yield


# The nine trials of a `condensa demo` throughput search (sparsity, accuracy, speedup,
# accuracy SE, speedup SE): speed readings on a busy CPU, threshold 0.98443.
DEMO = [
    (0.19664, 0.997214, 1.9131, 0.002782, 0.0712),
    (0.44182, 0.988858, 1.6830, 0.005540, 0.2248),
    (0.71896, 0.977716, 5.0383, 0.007790, 0.2512),
    (0.97020, 0.406685, 8.6832, 0.025925, 0.6871),
    (0.53955, 0.994429, 3.1410, 0.003928, 0.4081),
    (0.63855, 0.988858, 2.7738, 0.005540, 0.0576),
    (0.67815, 0.997214, 2.7139, 0.002782, 0.0680),
    (0.75735, 0.986072, 3.2778, 0.006185, 0.0978),
    (0.73755, 0.963788, 2.4327, 0.009860, 0.3196),
]


def _demo_trials() -> list[Trial]:
    return [
        Trial(i, s, a, o, a >= 0.98443, extra={"accuracy_se": ase, "objective_se": ose})
        for i, (s, a, o, ase, ose) in enumerate(DEMO)
    ]


def test_known_points_cost_no_evaluation_and_are_never_the_answer():
    """A known point at the objective's peak is learned from, not returned nor re-run."""
    calls = []

    def evaluate(s):
        calls.append(s)
        return logistic_accuracy(s), -((s - 0.3) ** 2)

    peak = {"sparsity": 0.3, "accuracy": logistic_accuracy(0.3), "objective": 0.0}
    result = search_sparsity(
        evaluate, accuracy_threshold=0.9, budget=6, seed=0, deterministic=True, known=[peak]
    )
    assert len(calls) == len(result.trials) == 6
    assert all(t.index >= 0 and not t.known for t in result.trials)
    assert all(abs(s - 0.3) > 1e-3 for s in calls)  # never proposed again
    (recorded,) = result.extra["known"]
    assert recorded["sparsity"] == 0.3 and recorded["index"] == -1
    known = Trial(-1, 0.3, peak["accuracy"], 0.0, True, "known")
    problem = SearchProblem(((0.0, 0.99),), Constraint(0.9), 0, deterministic=True, known=(known,))
    answer = TwoStage(problem).answer(result.trials)
    assert answer.best is not None and answer.best >= 0
    assert result.trials[answer.best] is result.best
    assert result.best is not None and result.best.objective < 0.0


def test_a_known_dense_model_stops_an_extrapolated_reading_near_sparsity_zero():
    """The demo's nine trials: a convex trend fitted to noisy speedups rises toward s = 0.

    Without the uncompressed model (1.0x at s = 0) the last reading goes to s < 0.05,
    where a model cannot be faster than the dense one; with it the reading stays where
    the answer is decided.
    """
    trials = _demo_trials()
    constraint = Constraint(0.98443)
    dense = Trial(-1, 0.0, 0.998, 1.0, True, "known", extra={"accuracy_se": 0.002,
                                                               "objective_se": 0.0})  # fmt: skip
    alone = TwoStage(SearchProblem(((0.0, 0.99),), constraint, seed=0))
    anchored = TwoStage(SearchProblem(((0.0, 0.99),), constraint, seed=0, known=(dense,)))
    (blind,) = alone.propose(trials, budget_left=1)
    (informed,) = anchored.propose(trials, budget_left=1)
    assert blind.point < 0.05
    assert 0.6 < informed.point < 0.8
    answer = anchored.answer(trials)
    assert answer.best is not None and trials[answer.best].sparsity > 0.5


def test_a_known_point_is_never_replicated():
    """Its margin is within noise of the threshold, yet only a trial may be measured again."""
    known = Trial(-1, 0.0, 0.901, 1.0, True, "known", extra={"accuracy_se": 0.01})
    trial = Trial(0, 0.5, 0.95, 2.0, True, extra={"accuracy_se": 0.01})
    data = gp_data([known, trial], lambda s: s, Constraint(0.9).margin)
    gp = fit_gp(data.x, data.margin, data.margin_noise)
    obj = fit_gp(data.x, data.objective, None)
    _, again = last_measurement(gp, obj, data, data.x[:0], credible=0.8, monotone=False,
                                replicates=2, answer=None)  # fmt: skip
    assert again is None or not again.known


@pytest.mark.parametrize(
    ("known", "message"),
    [
        (DENSE, "known must be a list of mappings"),
        ([(0.0, 0.92, 1.0)], r"known\[0\] must be a mapping with a sparsity"),
        ([{**DENSE, "sparsity": 1.5}], r"known\[0\] sparsity 1.5 must lie inside the bounds"),
        ([{"sparsity": 0.0, "accuracy": 0.9}], r"known\[0\]: .*without accuracy/objective"),
        ([{**DENSE, "objective": float("nan")}], r"known\[0\]: .*non-finite objective"),
    ],
)
def test_malformed_known_points_are_refused_before_any_evaluation(known, message):
    calls = []
    with pytest.raises(ConfigError, match=message):
        search_sparsity(lambda s: calls.append(s) or (0.9, s), accuracy_threshold=0.5,
                        budget=3, seed=0, known=known)  # fmt: skip
    assert not calls


def test_baseline_strategies_run_beside_known_points():
    """A strategy that ignores them still gets its whole budget and a real answer."""
    result = search_sparsity(lambda s: (logistic_accuracy(s), s), accuracy_threshold=0.9,
                             budget=4, seed=0, strategy="grid", known=[DENSE])  # fmt: skip
    assert len(result.trials) == 4 and result.best is not None and not result.best.known


def test_the_multi_dimensional_search_learns_from_known_points():
    """With one trial and one known point, 'bo' fits its GPs instead of drawing at random."""
    from condensa.search.multi import ConstrainedBO

    bounds = ((0.0, 0.9), (0.0, 0.9))
    constraint = Constraint(0.9)
    dense = Trial(-1, (0.0, 0.0), 0.92, 1.0, True, "known")
    trial = Trial(0, (0.5, 0.5), 0.91, 2.0, True)
    alone = ConstrainedBO(SearchProblem(bounds, constraint, seed=0, settings=1))
    informed = ConstrainedBO(SearchProblem(bounds, constraint, seed=0, settings=1, known=(dense,)))
    (random_draw,) = alone.propose([trial], budget_left=5)
    (fitted,) = informed.propose([trial], budget_left=5)
    assert random_draw.point != fitted.point
    result = search_sparsity(
        lambda v: (0.92 - 0.05 * sum(v), sum(v)), accuracy_threshold=0.9, bounds=bounds,
        budget=5, seed=0, strategy="bo", known=[{"sparsity": [0.0, 0.0], "accuracy": 0.92,
                                                  "objective": 0.0}],
    )  # fmt: skip
    assert len(result.trials) == 5 and all(not t.known for t in result.trials)
