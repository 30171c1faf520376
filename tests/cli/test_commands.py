"""Each subcommand's happy path, through main([...]) and temporary directories."""

import json

import pytest
import torch

import condensa
from condensa.cli import main

from .conftest import write_config


@pytest.mark.slow
def test_search_writes_a_complete_run_directory(finished_run):
    for name in ("config.toml", "baseline.condensa", "journal.jsonl", "summary.json"):
        assert (finished_run / name).is_file(), name
    for name in ("model.condensa", "scheme.toml"):
        assert (finished_run / "best" / name).is_file(), name
    summary = json.loads((finished_run / "summary.json").read_text())
    assert len(summary["trials"]) == 2
    chosen = summary["chosen"]
    assert chosen is not None
    assert chosen["validation"] >= summary["threshold"]  # the constraint holds
    assert chosen["macs"] < summary["baseline"]["macs"]  # filters really removed
    assert chosen["throughput"]["unit"] == "samples/s" and chosen["speedup"] > 0
    assert len(list((finished_run / "trials").glob("*.condensa"))) == 2


def test_best_model_file_reloads_to_the_same_outputs(finished_run):
    """best/model.condensa records the zoo architecture and reproduces the chosen model."""
    model = condensa.load(finished_run / "best" / "model.condensa")
    baseline = condensa.load(finished_run / "baseline.condensa")
    x = torch.rand(4, 1, 8, 8)
    assert condensa.masking.masks(model)  # compressed
    assert not condensa.masking.masks(baseline)
    assert model(x).shape == (4, 10)


def test_report_is_self_contained(finished_run, capsys):
    """Both renderings carry every section; the chosen trial's recovery is a real table."""
    assert main(["report", str(finished_run)]) == 0
    page = (finished_run / "report.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page
    assert 'src="figures' not in page  # no external images
    md = (finished_run / "report.md").read_text()
    assert "| measured speedup |" in md and "## Trials" in md and "```toml" in md
    summary = json.loads((finished_run / "summary.json").read_text())
    chosen = next(t for t in summary["trials"] if t["index"] == summary["best_trial"])
    records = chosen["extra"]["recovery"]
    assert isinstance(records, list) and records  # kept as data through the journal
    section = md.split("## Recovery of the chosen model")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert "validation" in rows[0] and len(rows) == 2 + len(records)  # header, rule, rows
    assert page.count("<h2>") == md.count("\n## ")  # the same sections in HTML
    assert (finished_run / "figures" / "search.png").is_file()
    assert (finished_run / "figures" / "layers.png").is_file()


@pytest.mark.slow
def test_rerunning_a_finished_search_reuses_every_trial(finished_run, tmp_path, capsys):
    config = finished_run / "config.toml"
    journal = (finished_run / "journal.jsonl").read_text()
    code = main(["search", str(config), "--output", str(finished_run)])
    out = capsys.readouterr().out
    assert code == 0
    assert "resuming" in out and "trial 1/2" not in out  # nothing evaluated again
    assert (finished_run / "journal.jsonl").read_text() == journal


@pytest.mark.slow
def test_compress_at_a_given_sparsity(tmp_path, capsys):
    config = write_config(tmp_path, method="finetune", options="options = { steps = 5 }")
    out_dir = tmp_path / "c"
    code = main(["compress", str(config), "--sparsity", "0.5", "-o", str(out_dir)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["kind"] == "compress" and summary["chosen"]["target_sparsity"] == 0.5
    assert (out_dir / "report.html").is_file()
    assert "sparsity = 0.5" in (out_dir / "best" / "scheme.toml").read_text()


@pytest.mark.slow
def test_flags_and_set_override_config_keys(tmp_path, capsys):
    config = write_config(tmp_path)
    out_dir = tmp_path / "o"
    code = main(
        [
            "search",
            str(config),
            "-o",
            str(out_dir),
            "--budget",
            "1",
            "--set",
            "train.epochs=1",
            "--set",
            "scheme.criteria='l1'",
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    written = (out_dir / "config.toml").read_text()
    assert "budget = 1" in written and "epochs = 1" in written and 'criteria = "l1"' in written
    assert len(json.loads((out_dir / "summary.json").read_text())["trials"]) == 1


@pytest.mark.slow
def test_stats_thin_and_export(finished_run, tmp_path, capsys):
    model = str(finished_run / "best" / "model.condensa")
    assert main(["stats", model, "--input-size", "1,1,8,8"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "bytes" in out
    pt2 = tmp_path / "thin.pt2"
    assert main(["thin", model, "--input-size", "2,1,8,8", "-o", str(pt2)]) == 0
    out = capsys.readouterr().out
    assert "thinned" in out and pt2.is_file()
    program = torch.export.load(str(pt2))
    x = torch.rand(2, 1, 8, 8)
    expected = condensa.masking.bake(condensa.load(model)).eval()(x)
    torch.testing.assert_close(program.module()(x), expected, atol=1e-5, rtol=1e-5)
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", model, "--input-size", "2,1,8,8", "-o", str(onnx_path)]) == 0
    assert onnx_path.is_file() and "checked with onnxruntime" in capsys.readouterr().out


@pytest.mark.slow
def test_compress_with_gradual_pruning_and_distillation_reports_recovery(tmp_path, capsys):
    """method gmp with a distill table runs from the CLI; the report shows its recovery."""
    options = "options = { steps = 40, evaluations = 2, distill = { temperature = 3 } }"
    config = write_config(tmp_path, method="gmp", options=options)
    out_dir = tmp_path / "g"
    code = main(["compress", str(config), "--sparsity", "0.5", "-o", str(out_dir), "-q"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert [r["steps"] for r in summary["recovery"]] == [34, 40]  # after the ramp (28)
    assert "## Recovery of the chosen model" in (out_dir / "report.md").read_text()
