"""Killing `condensa search` mid-trial and re-running it finishes without repeating trials."""

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


@pytest.mark.slow
def test_killed_search_resumes_without_repeating_finished_trials(tmp_path, capsys):
    config = write_config(tmp_path, options="options = { steps = 400 }", budget=4)
    out = tmp_path / "out"
    argv = ["search", str(config), "--output", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "condensa", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while len(_trial_lines(out / "journal.jsonl")) < 2:  # two trials done, third running
            assert process.poll() is None, "the search ended before it could be killed"
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
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
