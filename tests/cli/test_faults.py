"""Faults a real machine produces: a full disk, two runs on one directory, --force by user files."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import condensa
from condensa import zoo
from condensa.cli import main
from condensa.search import search_sparsity

from .conftest import write_config

ROOT = Path(__file__).resolve().parents[2]


def _one_line_error(capsys, code, expected=1):
    assert code == expected
    err = capsys.readouterr().err
    assert err.startswith("condensa: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return err


def test_environment_errors_stop_the_search_and_are_retried_on_resume(tmp_path):
    """An OSError in evaluate is not a property of the sparsity: not journaled, retried."""
    journal = tmp_path / "j.jsonl"
    calls = []

    def full_disk(s):
        calls.append(s)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return 0.9 - 0.3 * s, s

    with pytest.raises(OSError, match="No space left"):
        search_sparsity(full_disk, accuracy_threshold=0.8, budget=4, seed=0, journal=journal)
    lines = journal.read_text().splitlines()
    assert len(lines) == 2  # the header and the one finished trial; the failure is not recorded
    result = search_sparsity(
        lambda s: (0.9 - 0.3 * s, s), accuracy_threshold=0.8, budget=4, seed=0, journal=journal
    )
    assert len(result.trials) == 4 and not any(t.failed for t in result.trials)
    assert [t.index for t in result.trials] == [0, 1, 2, 3]


def test_configuration_error_inside_a_trial_stops_the_search(tmp_path):
    """A ConfigError is the user's to fix: it ends the search instead of burning the budget."""
    calls = []

    def misconfigured(s):
        calls.append(s)
        raise condensa.ConfigError("pattern '^fc9$' matched nothing")

    with pytest.raises(condensa.ConfigError, match="fc9"):
        search_sparsity(misconfigured, accuracy_threshold=0.5, budget=5, seed=0)
    assert len(calls) == 1


@pytest.mark.slow
def test_disk_full_while_saving_trials_fails_cleanly_and_resumes(tmp_path, capsys, monkeypatch):
    """ENOSPC on a trial model: exit 1 in one line, nothing journaled as failed; then it resumes."""
    import condensa.trials

    config = write_config(tmp_path, budget=2)
    out = tmp_path / "o"
    real_save = condensa.trials.save

    def no_space(model, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(condensa.trials, "save", no_space)
    err = _one_line_error(capsys, main(["search", str(config), "-o", str(out), "-q"]))
    assert "No space left on device" in err
    journal = (out / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 1  # header only: no trial recorded as failed
    monkeypatch.setattr(condensa.trials, "save", real_save)
    assert main(["search", str(config), "-o", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chosen"] is not None
    assert not any(t["error"] for t in summary["trials"])


def _model(tmp_path):
    model = condensa.compress(zoo.get("lenet300100", width=0.25), condensa.schemes.NeuronPrune(0.5))
    return condensa.save(model, tmp_path / "m.condensa", zoo="lenet300100", kwargs={"width": 0.25})


@pytest.mark.slow
@pytest.mark.parametrize("command", [["export"], ["thin"], ["thin", ".pt2"]])
def test_full_disk_never_replaces_a_valid_export(tmp_path, command):
    """With writes capped (RLIMIT_FSIZE), export/thin -o fail in one line; the old file stays."""
    model = _model(tmp_path)
    suffix = command[1] if len(command) > 1 else ".onnx"
    target = tmp_path / f"model{suffix}"
    argv = [command[0], str(model), "--input-size", "2,784", "-o", str(target)]
    assert main(argv) == 0
    before = target.read_bytes()
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the cap fail with EFBIG
        from condensa.cli import main
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
        sys.exit(main({argv!r}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-1500:]
    err = done.stderr.strip().splitlines()
    assert err[-1].startswith("condensa: error:") and "File too large" in err[-1]
    assert "Traceback" not in done.stderr
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.condensa", target.name])


@pytest.mark.slow
def test_save_on_a_full_disk_keeps_the_previous_file(tmp_path):
    """condensa.save raises OSError (not a library-specific error) and leaves the old file."""
    path = _model(tmp_path)
    before = path.read_bytes()
    script = textwrap.dedent(
        f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        import condensa
        from condensa import zoo
        model = zoo.get("lenet300100")
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
        try:
            condensa.save(model, {str(path)!r}, zoo="lenet300100")
        except OSError as exc:
            print("OSError", exc.errno)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == f"OSError {errno.EFBIG}", done.stderr[-1500:]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.condensa"]


@pytest.mark.slow
def test_second_run_on_a_locked_directory_fails_at_once(tmp_path, capsys):
    """While one process runs in a directory, another search there exits 1 naming its pid."""
    config = write_config(tmp_path, budget=1)
    out = tmp_path / "o"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from condensa.cli.rundir import RunDir
                run = RunDir({str(out)!r})
                run.path.mkdir()
                run.lock()
                print("locked", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = _one_line_error(capsys, main(["search", str(config), "-o", str(out), "-q"]))
        assert f"in use (pid {holder.pid})" in err
        err = _one_line_error(capsys, main(["compress", str(config), "-o", str(out), "-q"]))
        assert "in use" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the lock dies with its process: the directory is usable again
    assert main(["search", str(config), "-o", str(out), "-q"]) == 0


@pytest.mark.slow
def test_two_concurrent_searches_never_share_a_journal(tmp_path):
    """Two identical `condensa search` processes: one runs, the other is refused at once."""
    config = write_config(tmp_path, budget=2)
    out = tmp_path / "o"
    argv = [sys.executable, "-m", "condensa", "search", str(config), "-o", str(out), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while not (out / ".condensa-owner").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(argv, capture_output=True, text=True, env=env)
    first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err.decode()[-1500:]
    assert second.returncode == 1 and "in use (pid" in second.stderr
    records = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    indices = [r["trial"]["index"] for r in records if r["type"] == "trial"]
    assert indices == sorted(set(indices)) == list(range(len(indices)))


@pytest.mark.slow
def test_force_removes_only_what_the_run_wrote(tmp_path, capsys):
    """User files inside best/, trials/ or beside the run survive --force."""
    config = write_config(tmp_path, budget=1)
    out = tmp_path / "o"
    assert main(["search", str(config), "-o", str(out), "-q"]) == 0
    (out / "best" / "notes.txt").write_text("mine")
    (out / "thesis.tex").write_text("mine too")
    written = json.loads((out / ".condensa-manifest").read_text())
    assert "best/model.condensa" in written and "baseline.condensa" in written
    assert main(["search", str(config), "-o", str(out), "-q", "--set", "seed=1", "--force"]) == 0
    assert (out / "best" / "notes.txt").read_text() == "mine"
    assert (out / "thesis.tex").read_text() == "mine too"
    assert "seed = 1" in (out / "config.toml").read_text()


@pytest.mark.slow
def test_force_on_a_foreign_directory_deletes_nothing(tmp_path, capsys):
    """--force to use a non-empty foreign directory adds the run beside the user's files."""
    config = write_config(tmp_path, budget=1)
    out = tmp_path / "o"
    (out / "best").mkdir(parents=True)
    (out / "best" / "keep.txt").write_text("mine")
    assert main(["search", str(config), "-o", str(out), "-q", "--force"]) == 0
    assert (out / "best" / "keep.txt").read_text() == "mine"
    assert (out / "best" / "model.condensa").is_file()


def test_selection_typo_is_refused_before_training(tmp_path, capsys):
    """A scheme pattern matching nothing fails at once (exit 2) and writes nothing."""
    config = write_config(tmp_path)
    out = tmp_path / "o"
    argv = ["search", str(config), "-o", str(out), "--set", "scheme.include=['^nope$']"]
    err = _one_line_error(capsys, main(argv), expected=2)
    assert "nope" in err and "matched no" in err
    assert not out.exists()


@pytest.mark.slow
def test_paths_with_brackets_print_as_they_are(tmp_path, capsys):
    """A run directory named like rich markup finishes and is printed verbatim."""
    config = write_config(tmp_path, budget=1)
    out = tmp_path / "[/x][red]run"
    assert main(["search", str(config), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed


@pytest.mark.slow
def test_a_strategy_from_outside_the_package_runs_through_the_cli(tmp_path, capsys):
    """search.strategy = 'package.module:Class' names a proposer the user wrote."""
    config = write_config(tmp_path, budget=3)
    out = tmp_path / "o"
    argv = ["search", str(config), "-o", str(out), "-q"]
    argv += ["--set", "search.strategy='tests.search.test_strategies:EdgeWalker'"]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert [t["stage"] for t in summary["trials"]] == ["walk"] * 3
    err = _one_line_error(capsys, main([*argv[:4], "--set", "search.strategy='annealing'"]), 2)
    assert "unknown search strategy 'annealing'" in err and "two-stage" in err
