"""Word-level language-modelling corpora from plain text files, and BPTT batching."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from condensa.atomic import write_text
from condensa.errors import CondensaError, ConfigError

UNK, EOS = "<unk>", "<eos>"
WIKITEXT_FILES = ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens")
SPLIT = (0.9, 0.05, 0.05)
KJV_RANGE = "Gen1:1-Rev22:21"


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id mapping; id 0 is ``<unk>``, id 1 is ``<eos>``."""

    itos: tuple[str, ...]

    @classmethod
    def build(
        cls, lines: Iterable[list[str]], *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Vocabulary of the tokens seen at least ``min_count`` times (most frequent first)."""
        counts = Counter(token for line in lines for token in line)
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls((UNK, EOS, *ranked))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, lines: Iterable[list[str]]) -> torch.Tensor:
        """`(n_tokens,)` int64 ids, ``<eos>`` after each line, unknown words as ``<unk>``."""
        stoi = {t: i for i, t in enumerate(self.itos)}
        ids = [stoi.get(t, 0) for line in lines for t in (*line, EOS)]
        return torch.tensor(ids, dtype=torch.int64)


@dataclass(frozen=True)
class Corpus:
    """A vocabulary and three token streams."""

    vocab: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def tokenize(text: str, *, lowercase: bool = False) -> list[list[str]]:
    """Whitespace tokens per non-empty line."""
    lines = text.lower().splitlines() if lowercase else text.splitlines()
    return [line.split() for line in lines if line.strip()]


def load_corpus(
    path: str | Path,
    *,
    min_count: int = 1,
    max_vocab: int | None = None,
    lowercase: bool = False,
) -> Corpus:
    """A corpus from a WikiText-2-style directory or from one text file.

    Args:
        path: a directory with ``wiki.{train,valid,test}.tokens``, or a text file whose
            lines are split 90/5/5 (contiguously, in order) into train/valid/test.
        min_count: training-set words seen fewer times become ``<unk>``.
        max_vocab: keep only the most frequent words.
        lowercase: lowercase the text first.

    Raises:
        CondensaError: missing files (named, with how to get them) or an empty split.

    """
    path = Path(path)
    if path.is_dir():
        missing = [n for n in WIKITEXT_FILES if not (path / n).is_file()]
        if missing:
            raise CondensaError(
                f"corpus directory {str(path)!r} lacks {', '.join(missing)}; WikiText-2 "
                "comes as wikitext-2-v1.zip (unzip it and pass the wikitext-2 directory), "
                "or pass a single text file to split 90/5/5"
            )
        splits = [tokenize(_read(path / n), lowercase=lowercase) for n in WIKITEXT_FILES]
    elif path.is_file():
        lines = tokenize(_read(path), lowercase=lowercase)
        n_train, n_valid = int(len(lines) * SPLIT[0]), int(len(lines) * SPLIT[1])
        splits = [lines[:n_train], lines[n_train : n_train + n_valid], lines[n_train + n_valid :]]
    else:
        raise CondensaError(
            f"no corpus at {str(path)!r}: give a WikiText-2 directory or a text file "
            "(for the King James Bible: condensa.data.kjv_text(), "
            "which needs apt-get install -y bible-kjv)"
        )
    for name, split in zip(("train", "valid", "test"), splits, strict=True):
        if not split:
            raise CondensaError(f"the {name} split of {str(path)!r} holds no text")
    vocab = Vocabulary.build(splits[0], min_count=min_count, max_size=max_vocab)
    return Corpus(vocab, *(vocab.encode(s) for s in splits))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CondensaError(f"{str(path)!r} is not UTF-8 text: {exc}") from None


def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a `(n,)` stream into ``batch_size`` columns: `(n // batch_size, batch_size)`.

    Raises:
        ConfigError: ``batch_size`` < 1 or larger than the stream.

    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    rows = tokens.numel() // batch_size
    if rows < 2:
        raise ConfigError(f"{tokens.numel()} tokens are too few for batch_size {batch_size}")
    return tokens[: rows * batch_size].reshape(batch_size, rows).t().contiguous()


def bptt_batches(
    source: torch.Tensor, bptt: int, *, start: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(inputs, targets)`` windows of `(≤bptt, B)` over a batchified `(T, B)` source."""
    if not isinstance(bptt, int) or bptt < 1:
        raise ConfigError(f"bptt must be a positive integer, got {bptt!r}")
    for i in range(start, source.shape[0] - 1, bptt):
        length = min(bptt, source.shape[0] - 1 - i)
        yield source[i : i + length], source[i + 1 : i + 1 + length]


def kjv_text(cache: str | Path | None = None) -> Path:
    """The King James Bible as a plain text file (one verse per line, lowercased, tokenized).

    Produced with the ``bible`` program of the Debian package ``bible-kjv`` and written
    to ``cache`` (default: ``~/.cache/condensa/kjv.txt``); an existing cache is reused.

    Raises:
        CondensaError: ``bible`` is not installed (``apt-get install -y bible-kjv``).

    """
    path = Path(cache) if cache is not None else Path.home() / ".cache" / "condensa" / "kjv.txt"
    if path.is_file() and path.stat().st_size > 0:
        return path
    program = shutil.which("bible")
    if program is None:
        raise CondensaError(
            "the KJV text comes from the bible-kjv package: apt-get install -y bible-kjv"
        )
    done = subprocess.run(
        [program, "-f", "-l", "100000", KJV_RANGE], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise CondensaError(f"'bible' failed (exit {done.returncode}): {done.stderr.strip()[:200]}")
    verses = []
    for line in done.stdout.splitlines():
        match = re.match(r"^\S+:\d+\s+(.*\S)", line)  # "Ge1:1 In the beginning..."
        if match:
            words = re.findall(r"[a-z]+(?:'[a-z]+)?|[^\sa-z]", match.group(1).lower())
            verses.append(" ".join(words))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "\n".join(verses) + "\n")
    return path
