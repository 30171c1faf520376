"""Dataset loaders that read local files only (never download).

Missing data raises :class:`~condensa.CondensaError` naming the expected files and
how to obtain them.
"""

from condensa.data.cifar import load_cifar10
from condensa.data.digits import load_digits
from condensa.data.idx import load_mnist, read_idx
from condensa.data.text import (
    Corpus,
    Vocabulary,
    batchify,
    bptt_batches,
    kjv_text,
    load_corpus,
    tokenize,
)

__all__ = [
    "Corpus",
    "Vocabulary",
    "batchify",
    "bptt_batches",
    "kjv_text",
    "load_cifar10",
    "load_corpus",
    "load_digits",
    "load_mnist",
    "read_idx",
    "tokenize",
]
