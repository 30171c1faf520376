"""The command line as a user meets it: the demo runs both searches, usage errors exit 2, every
subcommand has help.
"""

import pytest

from condensa.cli import main


@pytest.mark.slow
def test_demo_runs_both_searches_and_writes_reports(capsys, tmp_path):
    """The demo trains, searches twice (memory, throughput), and reports both."""
    code = main(["demo", "--budget", "3", "--output", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "memory" in out and "throughput" in out and "chosen sparsity" in out
    for run in ("memory", "throughput"):
        page = (tmp_path / run / "report.html").read_text()
        assert "data:image/png;base64," in page and "Trials" in page


@pytest.mark.parametrize("flag", ["--budget", "--threads"])
def test_demo_rejects_non_positive_counts(capsys, flag, tmp_path):
    code = main(["demo", flag, "0", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert flag in err and "got 0" in err and ("must be >= 1" in err or "between 1 and" in err)
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_usage_errors_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert main(["search"]) == 2  # missing CONFIG


@pytest.mark.parametrize(
    "command", ["demo", "search", "compress", "report", "stats", "thin", "export"]
)
def test_every_subcommand_has_help(capsys, command):
    assert main([command, "--help"]) == 0
    assert "usage: condensa " + command in capsys.readouterr().out


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "search", "compress", "report", "stats", "thin", "export"):
        assert command in out


def test_search_help_lists_every_registered_method_objective_and_strategy(capsys):
    """The help is generated from the registries (a name added there appears here)."""
    from condensa.objectives import objective_names
    from condensa.optim.methods import METHODS
    from condensa.search import strategy_names

    assert main(["search", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in (*METHODS, *objective_names(), *strategy_names()):
        assert name in out, name
    assert {"wanda", "gptq"} <= set(METHODS) and {"file-size", "decode"} <= set(objective_names())
    assert "bisection" in strategy_names()
