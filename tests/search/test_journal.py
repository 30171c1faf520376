"""The trial journal: every trial is on disk before the next evaluation, a resumed search equals an
uninterrupted one, and damaged journals are refused or repaired by name.
"""

import json

import pytest

from condensa import ConfigError
from condensa.search import TwoStageSettings, search_sparsity
from tests.search.conftest import logistic_accuracy

FAST = TwoStageSettings(grid=201, samples=64)


class Killed(BaseException):
    """Stands for the process being killed (not an Exception: the search must not catch it)."""


@pytest.mark.slow
def test_every_trial_is_on_disk_before_the_next_evaluation(tmp_path):
    path = tmp_path / "journal.jsonl"
    seen = []

    def evaluate(s):
        lines = path.read_text().splitlines()
        seen.append(len(lines) - 1)  # trials already flushed
        return logistic_accuracy(s), s

    search_sparsity(
        evaluate, accuracy_threshold=0.91, budget=5, seed=0, journal=path, settings=FAST
    )
    assert seen == [0, 1, 2, 3, 4]
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert records[0]["type"] == "header"
    trial = records[1]["trial"]
    assert {"sparsity", "accuracy", "objective", "wall_s", "extra", "seed"} <= set(trial)


@pytest.mark.slow
@pytest.mark.parametrize("known", [[], [{"sparsity": 0.0, "accuracy": 0.92, "objective": 0.0}]])
def test_resume_after_crash_reuses_trials_and_matches_uninterrupted_run(tmp_path, known):
    """Killed during the 4th evaluation: the rerun reuses trials 1-3, ends identically.

    Known points (the dense model) are given again on resume, never journaled.
    """
    full = search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        seed=7,
        journal=tmp_path / "full.jsonl",
        settings=FAST,
        known=known,
    )
    path = tmp_path / "crashed.jsonl"
    calls = []

    def dying(s):
        calls.append(s)
        if len(calls) == 4:
            raise Killed
        return logistic_accuracy(s), s

    with pytest.raises(Killed):
        search_sparsity(
            dying, accuracy_threshold=0.91, seed=7, journal=path, settings=FAST, known=known
        )
    rerun_calls = []

    def evaluate(s):
        rerun_calls.append(s)
        return logistic_accuracy(s), s

    resumed = search_sparsity(
        evaluate, accuracy_threshold=0.91, seed=7, journal=path, settings=FAST, known=known
    )
    assert all(record["trial"]["index"] >= 0 for record in _records(path)[1:])
    assert rerun_calls[0] == calls[3]  # trials 1-3 were not re-run
    assert len(rerun_calls) == len(full.trials) - 3
    assert [t.sparsity for t in resumed.trials] == [t.sparsity for t in full.trials]
    assert resumed.best.sparsity == full.best.sparsity


@pytest.mark.slow
def test_truncated_last_line_is_dropped_with_warning(tmp_path):
    path = tmp_path / "j.jsonl"
    search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=3,
        seed=1,
        journal=path,
        settings=FAST,
    )
    text = path.read_text()
    path.write_text(text + '{"type": "trial", "trial": {"index": 3, "spars')
    with pytest.warns(UserWarning, match="dropping a truncated last line"):
        result = search_sparsity(
            lambda s: (logistic_accuracy(s), s),
            accuracy_threshold=0.91,
            budget=4,
            seed=1,
            journal=path,
            settings=FAST,
        )
    assert len(result.trials) == 4
    assert all(json.loads(x) for x in path.read_text().splitlines())


def test_journal_of_another_problem_is_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=2,
        seed=1,
        journal=path,
        settings=FAST,
    )
    with pytest.raises(ConfigError, match="belongs to another search problem.*threshold"):
        search_sparsity(lambda s: (1.0, s), accuracy_threshold=0.8, journal=path)
    with pytest.raises(ConfigError, match="differs in bounds"):
        search_sparsity(
            lambda s: (1.0, s), accuracy_threshold=0.91, bounds=(0.1, 0.9), journal=path
        )


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "j.jsonl"
    search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=3,
        seed=1,
        journal=path,
        settings=FAST,
    )
    lines = path.read_text().splitlines()
    lines[1] = "{garbage"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="corrupt at line 2"):
        search_sparsity(lambda s: (1.0, s), accuracy_threshold=0.91, journal=path)


def _journal_with_trials(tmp_path, budget=3):
    path = tmp_path / "journal.jsonl"
    search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=budget,
        seed=0,
        journal=path,
        settings=FAST,
    )
    return path


def _resume(path):
    return search_sparsity(
        lambda s: (logistic_accuracy(s), s),
        accuracy_threshold=0.91,
        budget=5,
        seed=0,
        journal=path,
        settings=FAST,
    )


def test_duplicate_trial_indices_are_refused(tmp_path):
    """Two writers interleaving a journal leave duplicate indices: resuming refuses it."""
    path = _journal_with_trials(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")  # trial 0 again
    with pytest.raises(ConfigError, match="holds trial index 0, expected 3"):
        _resume(path)


@pytest.mark.parametrize(
    "record",
    [
        '{"type": "trial", "trial": 7}',
        '{"type": "trial", "trial": {"index": 3}}',
        '{"type": "trial", "trial": {"index": "3", "sparsity": 0.5, "accuracy": 0.9, '
        '"objective": 0.5, "feasible": true}}',
        '{"type": "trial", "trial": {"index": 3, "sparsity": "half", "accuracy": 0.9, '
        '"objective": 0.5, "feasible": true}}',
        '{"type": "trial", "trial": {"index": 3, "sparsity": 0.5, "accuracy": null, '
        '"objective": 0.5, "feasible": true}}',
        '{"type": "trial", "trial": {"index": 3, "sparsity": 0.5, "accuracy": 0.9, '
        '"objective": 0.5, "feasible": "yes"}}',
        "[1, 2, 3]",
    ],
)
def test_journal_lines_of_the_wrong_shape_are_a_clear_error(tmp_path, record):
    """A hand-edited or damaged journal line is a ConfigError naming the line, not a crash."""
    path = _journal_with_trials(tmp_path)
    path.write_text(path.read_text() + record + "\n" + '{"type": "note"}\n')
    with pytest.raises(ConfigError, match="corrupt at line 5"):
        _resume(path)


def test_append_refuses_an_index_out_of_order(tmp_path):
    """The journal never holds two trials with one index, whoever appends."""
    from condensa.search.journal import Journal

    path = _journal_with_trials(tmp_path, budget=2)
    problem = json.loads(path.read_text().splitlines()[0])["problem"]
    journal = Journal(path, problem)
    with pytest.raises(ConfigError, match="trial index 0 appended after 2"):
        journal.append(journal.trials[0])


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_journal_trial_outside_the_bounds_is_refused_by_line(tmp_path):
    """A hand-edited sparsity of 5.0 is a corrupt line (named), not an IndexError."""
    path = tmp_path / "journal.jsonl"

    def evaluate(s):
        return logistic_accuracy(s), s

    search_sparsity(
        evaluate, accuracy_threshold=0.91, budget=2, seed=0, journal=path, strategy="bisection"
    )
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["trial"]["sparsity"] = 5.0
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="line 2: sparsity 5.0 is outside the search bounds"):
        search_sparsity(
            evaluate, accuracy_threshold=0.91, budget=3, seed=0, journal=path, strategy="bisection"
        )
