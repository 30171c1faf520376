import pytest

from condensa.cli import main


@pytest.mark.slow
def test_demo_runs_and_reports(capsys):
    """The demo trains, compresses with both schemes and prints the summary table."""
    code = main(["demo", "--epochs", "2", "--finetune-epochs", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Baseline" in out and "Compression summary" in out
    assert 'Compose([Prune(0.9), Quantize("float16")])' in out and "FilterPrune(0.5)" in out
    assert "sparsity" in out and "compression" in out


@pytest.mark.parametrize("flag", ["--epochs", "--finetune-epochs", "--threads"])
def test_demo_rejects_non_positive_counts(capsys, flag):
    code = main(["demo", flag, "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{flag} must be a positive integer, got 0" in err
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert main([]) == 2


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
