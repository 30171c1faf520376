"""The trial journal: JSON lines, flushed before the next evaluation, resumable."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from condensa.atomic import write_text
from condensa.errors import ConfigError
from condensa.search.trial import Trial

JOURNAL_VERSION = 1


class Journal:
    """Append-only record of a search: a header line describing the problem, then trials.

    Opening an existing journal for the same problem returns its completed trials;
    a journal of another problem is refused. A last line cut short (the process was
    killed mid-write) is dropped with a warning; corruption elsewhere is an error.

    Args:
        path: the ``.jsonl`` file.
        problem: plain data identifying the problem (bounds, constraint, dimensions).

    """

    def __init__(self, path: str | Path, problem: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.problem = json.loads(json.dumps(problem))
        self.trials: list[Trial] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            self._read()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write_line(
                {"type": "header", "version": JOURNAL_VERSION, "problem": self.problem}, mode="w"
            )

    def _read(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        except UnicodeDecodeError:
            raise ConfigError(f"journal {str(self.path)!r} is not UTF-8 text") from None
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
                    warnings.warn(
                        f"journal {str(self.path)!r}: dropping a truncated last line "
                        "(the search was interrupted while writing it)",
                        stacklevel=3,
                    )
                    write_text(self.path, "".join(lines[:-1]))
                    break
                raise ConfigError(
                    f"journal {str(self.path)!r} is corrupt at line {number}: {line[:80]!r}"
                ) from None
        if not records or not isinstance(records[0], dict) or records[0].get("type") != "header":
            raise ConfigError(f"{str(self.path)!r} is not a Condensa search journal (no header)")
        header = records[0]
        version = header.get("version", 0)
        if not isinstance(version, int) or not isinstance(header.get("problem", {}), dict):
            raise ConfigError(f"journal {str(self.path)!r} has a malformed header")
        if version > JOURNAL_VERSION:
            raise ConfigError(
                f"journal {str(self.path)!r} has version {header['version']}; "
                f"this Condensa reads up to {JOURNAL_VERSION}"
            )
        if header.get("problem") != self.problem:
            differences = sorted(
                k
                for k in set(header.get("problem", {})) | set(self.problem)
                if header.get("problem", {}).get(k) != self.problem.get(k)
            )
            raise ConfigError(
                f"journal {str(self.path)!r} belongs to another search problem "
                f"(differs in {', '.join(differences)}: journal has "
                f"{ {k: header.get('problem', {}).get(k) for k in differences} }, this search has "
                f"{ {k: self.problem.get(k) for k in differences} }); use another journal path"
            )
        self.trials = []
        for number, record in enumerate(records[1:], start=2):
            if not isinstance(record, dict):
                raise ConfigError(
                    f"journal {str(self.path)!r} is corrupt at line {number}: not a JSON object"
                )
            if record.get("type") != "trial":
                continue
            try:
                trial = Trial.from_dict(record.get("trial"))
            except ValueError as exc:
                raise ConfigError(
                    f"journal {str(self.path)!r} is corrupt at line {number}: {exc}"
                ) from None
            outside = _outside(trial.sparsity, self.problem.get("bounds"))
            if outside:
                raise ConfigError(
                    f"journal {str(self.path)!r} is corrupt at line {number}: sparsity "
                    f"{outside} is outside the search bounds {self.problem.get('bounds')}; "
                    "restore it or use another journal path"
                )
            if trial.index != len(self.trials):
                raise ConfigError(
                    f"journal {str(self.path)!r} line {number} holds trial index {trial.index}, "
                    f"expected {len(self.trials)} (duplicate or missing trials: two runs wrote "
                    "to it at once?); restore it or use another journal path"
                )
            self.trials.append(trial)

    def append(self, trial: Trial) -> None:
        """Record ``trial`` and flush it to disk (fsync) before returning.

        Raises:
            ConfigError: its index is not the next one (the journal never holds two
                trials with one index).

        """
        if trial.index != len(self.trials):
            raise ConfigError(
                f"journal {str(self.path)!r}: trial index {trial.index} appended after "
                f"{len(self.trials)} trials"
            )
        self._write_line({"type": "trial", "trial": trial.to_dict()}, mode="a")
        self.trials.append(trial)

    def _write_line(self, record: Mapping[str, Any], *, mode: str) -> None:
        with self.path.open(mode, encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _outside(point: Any, bounds: Any) -> str:
    """The coordinate of ``point`` outside ``bounds`` (``[[low, high], ...]``), or ``""``."""
    values = point if isinstance(point, (tuple, list)) else (point,)
    if not isinstance(bounds, list) or len(bounds) != len(values):
        return str(point) if isinstance(bounds, list) else ""
    for value, (low, high) in zip(values, bounds, strict=True):
        if value is not None and not low - 1e-9 <= value <= high + 1e-9:
            return repr(value)
    return ""
