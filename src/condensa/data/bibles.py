"""Bible verses as plain text, from Debian packages (no download): calibration and evaluation text.

The King James Bible (``apt-get install -y bible-kjv``) and the World English Bible
(``apt-get install -y sword-text-web diatheke``) hold the same verses in different
wording: calibrate a language model on one and evaluate it on the other, so the
evaluation text was never seen during compression.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from condensa.errors import CondensaError, ConfigError

SOURCES = {
    "kjv": "apt-get install -y bible-kjv",
    "web": "apt-get install -y sword-text-web diatheke",
}
"""The translations and how to install each."""

_KJV_LINE = re.compile(r"^(\S+?\d+:\d+) (.+)$")
_WEB_LINE = re.compile(r"^(.+? \d+:\d+): (.+)$")


def _run(argv: list[str], name: str) -> str:
    program = shutil.which(argv[0])
    if program is None:
        raise CondensaError(
            f"the {name.upper()} text needs the program {argv[0]!r}: {SOURCES[name]}"
        )
    done = subprocess.run([program, *argv[1:]], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CondensaError(
            f"{argv[0]!r} failed (exit {done.returncode}): {done.stderr.strip()[:200]}"
        )
    return done.stdout


def parse_verses(text: str, name: str) -> list[tuple[str, str]]:
    """``(reference, verse)`` pairs from the output of ``bible -f`` (kjv) or ``diatheke`` (web)."""
    pattern = _KJV_LINE if name == "kjv" else _WEB_LINE
    out = []
    for line in text.splitlines():
        found = pattern.match(line.strip())
        if found and found.group(2).strip():
            out.append((found.group(1), " ".join(found.group(2).split())))
    return out


def verses(name: str, *, cache: str | Path | None = None) -> list[tuple[str, str]]:
    """Every verse of translation ``name`` (``"kjv"`` or ``"web"``), in canonical order.

    The text is produced once by the package's program and kept in ``cache`` (default
    ``~/.cache/condensa/NAME-verses.txt``, one ``reference<TAB>verse`` per line).

    Raises:
        ConfigError: an unknown name (the valid ones listed).
        CondensaError: the package is not installed (the install command is named).

    """
    if name not in SOURCES:
        raise ConfigError(f"unknown Bible {name!r}; valid: {', '.join(SOURCES)}")
    path = (
        Path(cache)
        if cache is not None
        else Path.home() / ".cache" / "condensa" / f"{name}-verses.txt"
    )
    if path.is_file():
        rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()]
        return [(r[0], r[1]) for r in rows if len(r) == 2]
    if name == "kjv":
        text = _run(["bible", "-f", "-l", "100000", "Gen1:1-Rev22:21"], name)
    else:
        text = _run(
            ["diatheke", "-b", "engWEB2015eb", "-f", "plain", "-k", "Gen 1:1-Rev 22:21"], name
        )
    found = parse_verses(text, name)
    if not found:
        raise CondensaError(f"the {name.upper()} program printed no verses")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ref}\t{verse}\n" for ref, verse in found), encoding="utf-8")
    return found
