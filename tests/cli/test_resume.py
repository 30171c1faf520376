"""Killing `condensa search` mid-trial and re-running it finishes without repeating trials."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from condensa.cli import main

from .conftest import write_config

ROOT = Path(__file__).resolve().parents[2]


def _trial_lines(journal: Path) -> list[str]:
    if not journal.is_file():
        return []
    return [line for line in journal.read_text().splitlines() if '"type": "trial"' in line]


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``command`` in its own session (so the whole group can be killed), output dropped."""
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env, start_new_session=True)  # fmt: skip


def _wait_for_trials(process: subprocess.Popen[bytes], journal: Path, count: int) -> None:
    """Return once ``journal`` holds ``count`` trials (the process still running)."""
    deadline = time.monotonic() + 300
    while len(_trial_lines(journal)) < count:
        assert process.poll() is None, "the search ended before it could be killed"
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.05)


def _kill_after_two_trials(command: list[str], env: dict[str, str], journal: Path) -> None:
    """Run ``command`` and SIGKILL its whole process group once two trials are journaled."""
    process = _start(command, env)
    try:
        _wait_for_trials(process, journal, 2)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()


@pytest.mark.slow
def test_killed_search_resumes_without_repeating_finished_trials(tmp_path, capsys):
    config = write_config(tmp_path, options="options = { steps = 400 }", budget=4)
    out = tmp_path / "out"
    argv = ["search", str(config), "--output", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    _kill_after_two_trials([sys.executable, "-m", "condensa", *argv], env, out / "journal.jsonl")
    before = _trial_lines(out / "journal.jsonl")
    assert 2 <= len(before) < 4  # killed mid-search
    assert not (out / "summary.json").exists()

    assert main(argv) == 0
    printed = capsys.readouterr().out
    after = _trial_lines(out / "journal.jsonl")
    assert after[: len(before)] == before  # finished trials kept as they were
    assert len(after) == 4  # only the missing trials were run
    assert "resuming" in printed and "baseline: reusing" in printed
    assert "trial 1/4" not in printed and "trial 2/4" not in printed
    assert (out / "report.html").is_file()


def _torchrun(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "-m", "condensa", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )  # fmt: skip


@pytest.mark.slow
def test_data_parallel_search_survives_a_failed_rank_and_resumes(tmp_path):
    """Under torchrun, a killed rank ends the run; rerunning resumes from rank 0's journal.

    Rank 0 alone writes into the output; the other rank's scratch copy is gone at the end.
    """
    config = write_config(tmp_path, options="options = { steps = 400 }", budget=4)
    out = tmp_path / "out"
    argv = ["search", str(config), "--output", str(out)]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(scratch)}
    process = _torchrun(argv, env)
    try:
        _wait_for_trials(process, out / "journal.jsonl", 2)
        workers = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert len(workers) == 2
        os.kill(int(max(workers, key=int)), signal.SIGKILL)  # one rank dies
        assert process.wait(timeout=120) != 0  # the launcher ends the others
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before = _trial_lines(out / "journal.jsonl")
    assert 2 <= len(before) < 4
    assert not (out / "summary.json").exists()

    for leftover in scratch.glob("condensa-rank*"):  # a killed rank leaves its copy behind
        subprocess.run(["rm", "-rf", str(leftover)], check=True)
    resumed = _torchrun(argv, env)
    printed = resumed.communicate(timeout=600)[0].decode()
    assert resumed.returncode == 0, printed
    after = _trial_lines(out / "journal.jsonl")
    assert after[: len(before)] == before
    assert len(after) == 4
    assert printed.count("resuming the run") == 1  # rank 0 alone prints
    assert "trial 1/4" not in printed and "trial 4/4" in printed
    assert list(scratch.glob("condensa-rank*")) == []  # the other rank's copy is removed
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_ray_search_with_two_workers_resumes_after_the_driver_is_killed(tmp_path):
    """--workers 2 on a local Ray: killed mid-round, rerun, the journal is whole and unique.

    Only trials in flight when the driver died are run again; the answer is feasible.
    """
    pytest.importorskip("ray")
    config = write_config(tmp_path, options="options = { steps = 300 }", budget=6)
    out = tmp_path / "out"
    argv = ["search", str(config), "--output", str(out), "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    _kill_after_two_trials([sys.executable, "-m", "condensa", *argv], env, out / "journal.jsonl")
    before = _trial_lines(out / "journal.jsonl")
    assert 2 <= len(before) < 6
    done = subprocess.run(
        [sys.executable, "-m", "condensa", *argv], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    after = _trial_lines(out / "journal.jsonl")
    assert after[: len(before)] == before
    trials = [json.loads(line)["trial"] for line in after]
    assert [t["index"] for t in trials] == list(range(len(trials)))  # unique, gap-free
    assert len(before) < len(trials) <= 6
    assert {t["extra"]["round"] for t in trials} >= {1, 2}
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best_trial"]
    assert best is not None and trials[best]["feasible"]


def _journal(out: Path) -> list[dict]:
    return [
        json.loads(line)["trial"]
        for line in (out / "journal.jsonl").read_text().splitlines()
        if '"type": "trial"' in line
    ]


@pytest.mark.slow
def test_a_rank_killed_mid_trial_is_not_a_result_and_the_rerun_answers_the_same(tmp_path):
    """A rank dies inside a trial: nothing is journaled as failed; the rerun answers as an
    uninterrupted launch with the same seed does (issue: the gloo error was journaled)."""
    config = write_config(tmp_path, options="options = { steps = 200 }", budget=3)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    reference = tmp_path / "reference"
    whole = _torchrun(["search", str(config), "--output", str(reference)], env)
    assert whole.wait(timeout=600) == 0, whole.communicate()[0].decode()[-2000:]
    out = tmp_path / "out"
    argv = ["search", str(config), "--output", str(out)]
    process = _torchrun(argv, env)
    try:
        _wait_for_trials(process, out / "journal.jsonl", 1)
        time.sleep(1.5)  # inside the second trial's training
        workers = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        os.kill(int(max(workers, key=int)), signal.SIGKILL)
        printed = process.communicate(timeout=120)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert all(t["error"] is None for t in _journal(out)), _journal(out)
    assert "run the same command again" in printed
    resumed = _torchrun(argv, env)
    assert resumed.wait(timeout=600) == 0, resumed.communicate()[0].decode()[-2000:]
    assert all(t["error"] is None for t in _journal(out))
    expected = [t["sparsity"] for t in _journal(reference)]
    assert [t["sparsity"] for t in _journal(out)] == expected
    chosen = json.loads((out / "summary.json").read_text())["chosen"]
    expected_chosen = json.loads((reference / "summary.json").read_text())["chosen"]
    for key in ("target_sparsity", "validation", "test"):  # speed readings are noisy
        assert chosen[key] == expected_chosen[key]


@pytest.mark.slow
def test_a_ray_worker_killed_mid_trial_is_not_a_result_and_the_rerun_answers_the_same(tmp_path):
    """A trial worker dies: the search stops (exit 1), nothing is journaled as failed, and
    the rerun answers as an uninterrupted run with the same seed and workers."""
    pytest.importorskip("ray")
    config = write_config(tmp_path, options="options = { steps = 200 }", budget=4)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "condensa", "search", str(config), "--workers", "2"]
    reference = tmp_path / "reference"
    whole = subprocess.run([*command, "--output", str(reference)], capture_output=True,
                           text=True, env=env, timeout=600)  # fmt: skip
    assert whole.returncode == 0, whole.stdout + whole.stderr
    out = tmp_path / "out"
    process = subprocess.Popen(
        [*command, "--output", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_for_trials(process, out / "journal.jsonl", 2)
        deadline = time.monotonic() + 60
        workers: list[str] = []
        while not workers and time.monotonic() < deadline:
            found = subprocess.run(["pgrep", "-f", "ray::_Worker"], capture_output=True, text=True)
            workers = found.stdout.split()
            time.sleep(0.1)
        assert workers, "no Ray trial worker found"
        os.kill(int(workers[0]), signal.SIGKILL)
        printed = process.communicate(timeout=300)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    if process.returncode == 0:  # the killed worker had already finished its last trial
        pytest.skip("the worker was killed between trials; nothing to resume")
    assert "the worker running the trial died" in printed, printed[-2000:]
    assert all(t["error"] is None for t in _journal(out))
    again = subprocess.run([*command, "--output", str(out)], capture_output=True, text=True,
                           env=env, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(t["error"] is None for t in _journal(out))
    mine = json.loads((out / "summary.json").read_text())["chosen"]
    theirs = json.loads((reference / "summary.json").read_text())["chosen"]
    assert mine["target_sparsity"] == theirs["target_sparsity"]
