"""The typed run record reads back exactly what the runner wrote to summary.json."""

import json

import pytest

from condensa import ConfigError
from condensa.cli.record import ChosenFacts, RunReport, Speed
from condensa.search import Trial


def test_summary_round_trips_through_the_typed_record(finished_run):
    """from_dict then to_dict gives summary.json back, key for key."""
    data = json.loads((finished_run / "summary.json").read_text())
    report = RunReport.from_dict(data)
    assert json.loads(json.dumps(report.to_dict())) == data
    assert isinstance(report.chosen, ChosenFacts) and isinstance(report.chosen.throughput, Speed)
    assert all(isinstance(t, Trial) for t in report.trials)
    assert report.best is not None and report.best.index == report.best_trial


def test_a_summary_from_before_a_field_existed_still_reads(finished_run):
    """Older summaries (no world_size/device) load with the defaults."""
    data = json.loads((finished_run / "summary.json").read_text())
    del data["world_size"], data["device"]
    assert RunReport.from_dict(data).world_size == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("baseline"),
        lambda d: d["baseline"].pop("file_bytes"),
        lambda d: d.update(trials=[{"index": "one"}]),
        lambda d: d["chosen"].update(throughput={"value": 1.0}),
    ],
)
def test_a_malformed_summary_is_a_config_error(finished_run, change):
    """A missing or mistyped field is refused with a clear error, not a KeyError later."""
    data = json.loads((finished_run / "summary.json").read_text())
    change(data)
    with pytest.raises(ConfigError, match="a missing or malformed field"):
        RunReport.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value", "headline"),
    [
        (
            "answer_note",  # absent unless the search passed a trial over
            "trial 2 (sparsity 0.5000) measured feasible ... lower",
            "Why not another: trial 2 (sparsity 0.5000)",
        ),
        (
            "caution",  # absent unless the search's evidence was weak
            "no trial is credibly feasible: the highest P(feasible) ... is 0.62 < 0.8",
            "Caution: no trial is credibly feasible",
        ),
    ],
)
def test_a_note_on_the_answer_reaches_the_headline(finished_run, tmp_path, field, value, headline):
    """Why another trial lost, or a caution: in the record, it reaches the report's
    headline and round-trips; without one, nothing."""
    import shutil

    from condensa.cli.report import write_report

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    data = json.loads((run / "summary.json").read_text())
    # the shared run may carry an answer note (its side-by-side timing can override the
    # surrogate's choice): without the field, the headline says nothing of it
    data.pop(field, None)
    (run / "summary.json").write_text(json.dumps(data))
    assert headline.split(":")[0] + ":" not in write_report(run)[0].read_text()
    data[field] = value
    (run / "summary.json").write_text(json.dumps(data))
    md, _ = write_report(run)
    assert headline in md.read_text()
    assert getattr(RunReport.from_dict(data), field) == value


def test_the_report_gives_the_contenders_side_by_side_speedups(finished_run, tmp_path):
    """A final comparison in the record reaches the headline, fastest first; it round-trips."""
    import shutil

    from condensa.cli.report import write_report

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    data = json.loads((run / "summary.json").read_text())
    data["final_comparison"] = [
        {"trial": 4, "sparsity": 0.535, "objective_value": 4.4, "objective_spread": 0.3},
        {"trial": 5, "sparsity": 0.678, "objective_value": 4.9, "objective_spread": 0.2},
    ]
    (run / "summary.json").write_text(json.dumps(data))
    md, _ = write_report(run)
    assert (
        "Contenders timed side by side: sparsity 0.6780 4.90x (IQR 0.20), "
        "sparsity 0.5350 4.40x (IQR 0.30)." in md.read_text()
    )
    assert RunReport.from_dict(data).to_dict()["final_comparison"] == data["final_comparison"]


def test_the_cli_prints_the_caution_after_the_answer(finished_run):
    """The end-of-run lines name the caution when the record has one, and only then."""
    import dataclasses

    from rich.console import Console

    from condensa.cli.commands import _finish_run

    report = RunReport.from_dict(json.loads((finished_run / "summary.json").read_text()))
    for caution in (None, "no trial is credibly feasible: ... 0.62 < 0.8"):
        console = Console(record=True, width=200)
        _finish_run(dataclasses.replace(report, caution=caution), finished_run, console)
        text = console.export_text()
        assert text.startswith("chosen sparsity")
        assert ("caution: no trial is credibly feasible" in text) == (caution is not None)
