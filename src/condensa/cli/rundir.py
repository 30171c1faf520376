"""The run directory: one search's config, journal, trial models, best model and report.

Layout::

    RUN/config.toml          the resolved config (what was run)
    RUN/baseline.condensa    the uncompressed model the trials start from
    RUN/journal.jsonl        one line per finished trial (resume reads it)
    RUN/trials/              each trial's compressed model
    RUN/best/                the chosen model: model.condensa, model.onnx, scheme.toml
    RUN/figures/             search.png, layers.png
    RUN/summary.json         every number of the report
    RUN/report.md, RUN/report.html
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from condensa.cli.config import differences, dumps, identity, parse_toml
from condensa.errors import ConfigError

OWNED = (
    "config.toml",
    "baseline.condensa",
    "journal.jsonl",
    "trials",
    "best",
    "figures",
    "summary.json",
    "report.md",
    "report.html",
)


def write_text(path: Path, text: str) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


class RunDir:
    """A run directory (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.toml"
        self.baseline = self.path / "baseline.condensa"
        self.journal = self.path / "journal.jsonl"
        self.trials = self.path / "trials"
        self.best = self.path / "best"
        self.figures = self.path / "figures"
        self.summary = self.path / "summary.json"
        self.report_md = self.path / "report.md"
        self.report_html = self.path / "report.html"

    def claim(self, config: Mapping[str, Any], *, force: bool) -> bool:
        """Make the directory this run's; returns True when an earlier run is resumed.

        Raises:
            ConfigError: the directory holds a different run (the differing keys are
                named) and ``force`` is False, or it holds files that are not a run's.

        """
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"output {str(self.path)!r} exists and is not a directory")
        resumed = False
        if self.config.is_file():
            previous = parse_toml(self.config.read_text(encoding="utf-8"), str(self.config))
            changed = differences(identity(previous), identity(config))
            if changed and not force:
                raise ConfigError(
                    f"output directory {str(self.path)!r} holds a different run ("
                    + "; ".join(changed[:4])
                    + "); pass --force to replace it, or choose another --output"
                )
            if changed:
                self.clear()
            else:
                resumed = True
        elif self.path.is_dir() and any(self.path.iterdir()) and not force:
            raise ConfigError(
                f"output directory {str(self.path)!r} is not empty and holds no Condensa run; "
                "pass --force to use it anyway, or choose another --output"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.config, dumps(config))
        return resumed

    def clear(self) -> None:
        """Remove the files a run writes (and nothing else)."""
        for name in OWNED:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def read_summary(self) -> dict[str, Any]:
        """The run's summary.json.

        Raises:
            ConfigError: the directory holds no finished run.

        """
        if not self.summary.is_file():
            raise ConfigError(
                f"{str(self.path)!r} holds no finished run (no summary.json); "
                "run `condensa search CONFIG --output DIR` first"
            )
        data: dict[str, Any] = json.loads(self.summary.read_text(encoding="utf-8"))
        return data

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Write summary.json atomically."""
        write_text(self.summary, json.dumps(summary, indent=2, allow_nan=True))
