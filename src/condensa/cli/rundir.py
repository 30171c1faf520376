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
    RUN/.condensa-lock       held (filelock) while a process runs in the directory
    RUN/.condensa-owner      the pid holding it
    RUN/.condensa-manifest   every file the run wrote: ``--force`` removes these and no other

Every path the CLI deletes, or reads into a report, goes through :meth:`RunDir.owned`:
it must resolve inside the run directory, so neither a manifest entry (absolute, ``..``)
nor a symbolic link reaches a file outside it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import filelock

from condensa.atomic import write_text
from condensa.cli.config import differences, dumps, identity, parse_toml
from condensa.errors import CondensaError, ConfigError

FIXED = (
    "config.toml",
    "baseline.condensa",
    "journal.jsonl",
    "summary.json",
    "report.md",
    "report.html",
)
"""Files every run writes under these names (owned even without a manifest entry)."""
FOLDERS = ("trials", "best", "figures")
LOCK, OWNER, MANIFEST = ".condensa-lock", ".condensa-owner", ".condensa-manifest"
INTERNAL = (LOCK, OWNER, MANIFEST)


def check_path(path: Path, what: str) -> None:
    """Refuse a path that cannot be written as a name on disk and in UTF-8 reports.

    Raises:
        ConfigError: the name is not valid UTF-8, or a parent is a file, not a directory.

    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{what} {str(path).encode('utf-8', 'backslashreplace').decode()!r} is not valid "
            "UTF-8; choose a name made of UTF-8 characters"
        ) from None
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{what} {str(path)!r} lies under {str(parent)!r}, which is a file")


class RunDir:
    """A run directory (see the module docstring).

    :meth:`claim` takes an exclusive lock on the directory for as long as the
    process runs there (released by :meth:`release`), so two runs never share one.
    """

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
        self._lock: filelock.BaseFileLock | None = None

    def lock(self) -> None:
        """Take the directory's exclusive lock (the directory must exist).

        Raises:
            CondensaError: another process holds it (its pid is named).

        """
        lock = filelock.FileLock(str(self.path / LOCK), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            owner = self.path / OWNER
            pid = owner.read_text(encoding="utf-8").strip() if owner.is_file() else "unknown"
            raise CondensaError(
                f"run directory {str(self.path)!r} in use (pid {pid}); wait for that run to "
                "finish or choose another --output"
            ) from None
        self._lock = lock
        write_text(self.path / OWNER, f"{os.getpid()}\n")

    def release(self) -> None:
        """Release the lock taken by :meth:`claim` or :meth:`lock` (no-op when not held)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                (self.path / OWNER).unlink()
            self._lock.release()
            self._lock = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[RunDir]:
        """Hold the lock for a ``with`` block (for commands that only read and report)."""
        self.lock()
        try:
            yield self
        finally:
            self.release()

    def claim(self, config: Mapping[str, Any], *, force: bool) -> bool:
        """Lock the directory and make it this run's; True when an earlier run is resumed.

        Raises:
            ConfigError: the directory holds a different run (the differing keys are
                named) and ``force`` is False, it holds files that are not a run's, or
                it cannot be created.
            CondensaError: another process runs in it.

        """
        check_path(self.path, "output")
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"output {str(self.path)!r} exists and is not a directory")
        foreign = self.path.is_dir() and any(p.name not in INTERNAL for p in self.path.iterdir())
        if foreign and not self.config.is_file() and not force:
            raise ConfigError(
                f"output directory {str(self.path)!r} is not empty and holds no Condensa run; "
                "pass --force to use it anyway (nothing of yours is deleted), or choose "
                "another --output"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create output directory {str(self.path)!r}: {exc.strerror or exc}"
            ) from None
        self.lock()
        try:
            resumed = self._adopt(config, force=force)
            write_text(self.config, dumps(config))
        except BaseException:
            self.release()
            raise
        return resumed

    def _adopt(self, config: Mapping[str, Any], *, force: bool) -> bool:
        if not self.config.is_file():
            return False
        try:
            previous = parse_toml(self.config.read_text(encoding="utf-8"), str(self.config))
        except (UnicodeDecodeError, ConfigError):
            previous = {"unreadable": True}
        changed = differences(identity(previous), identity(config))
        if changed and not force:
            raise ConfigError(
                f"output directory {str(self.path)!r} holds a different run ("
                + "; ".join(changed[:4])
                + "); pass --force to replace it, or choose another --output"
            )
        if changed:
            self.clear()
            return False
        return True

    def owned(self, name: str | Path, *, follow: bool = True) -> Path | None:
        """``RUN/name`` when it stays inside the run directory, else None.

        Args:
            name: a path relative to the run directory (an absolute one is refused).
            follow: resolve a symbolic link at the last component too (for files that
                are read); False for files that are removed, where the link itself
                goes and its target stays.

        """
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            return None
        root = self.path.resolve()
        candidate = self.path / relative
        try:
            resolved = candidate.resolve() if follow else candidate.parent.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return None
        if not resolved.is_relative_to(root) or (follow and resolved == root):
            return None
        return candidate

    def track(self, *paths: Path) -> None:
        """Record files the run wrote, so that :meth:`clear` removes them and nothing else."""
        known = self._manifest()
        known.update(str(Path(p).relative_to(self.path)) for p in paths)
        write_text(self.path / MANIFEST, json.dumps(sorted(known), indent=0))

    def _manifest(self) -> set[str]:
        path = self.path / MANIFEST
        try:
            names = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        except (ValueError, UnicodeDecodeError):
            names = []
        if not isinstance(names, list):
            return set()
        return {n for n in names if isinstance(n, str) and self.owned(n, follow=False)}

    def clear(self) -> None:
        """Remove the files this run wrote (its manifest and fixed names), nothing else.

        Only paths inside the run directory are removed: an absolute or ``..`` entry in
        the manifest, or one reached through a symbolic link to a folder elsewhere, is
        skipped; a symbolic link itself is removed, never what it points to.
        """
        for name in sorted(self._manifest() | set(FIXED)):
            target = self.owned(name, follow=False)
            if target is not None and (target.is_file() or target.is_symlink()):
                target.unlink()
        for folder in FOLDERS:
            with contextlib.suppress(OSError):  # kept when it holds files not the run's
                (self.path / folder).rmdir()
        with contextlib.suppress(OSError):
            (self.path / MANIFEST).unlink()

    def read_summary(self) -> dict[str, Any]:
        """The run's summary.json.

        Raises:
            ConfigError: the directory holds no finished run, or its summary is unreadable.

        """
        if not self.summary.is_file() or self.owned(self.summary.name) is None:
            raise ConfigError(
                f"{str(self.path)!r} holds no finished run (no summary.json inside it); "
                "run `condensa search CONFIG --output DIR` first"
            )
        try:
            data = json.loads(self.summary.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{str(self.summary)!r} is corrupt ({exc}); run the search again to rewrite it"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("baseline"), dict):
            raise ConfigError(
                f"{str(self.summary)!r} is not a Condensa run summary; run the search again"
            )
        return data

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Write summary.json atomically."""
        write_text(self.summary, json.dumps(summary, indent=2, allow_nan=True))
