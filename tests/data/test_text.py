"""Text corpora: vocabulary, splits and BPTT windows are exact; missing or binary files are clear
errors; a language model trained on them learns.
"""

import shutil

import pytest
import torch

from condensa import CondensaError, ConfigError
from condensa.data import Vocabulary, batchify, bptt_batches, kjv_text, load_corpus
from condensa.optim import LanguageModelTrainer, adam
from condensa.zoo import LSTMLanguageModel


@pytest.fixture
def wikitext(tmp_path):
    (tmp_path / "wiki.train.tokens").write_text("the cat sat\nthe dog sat on the mat\n\n")
    (tmp_path / "wiki.valid.tokens").write_text("the bird sat\n")
    (tmp_path / "wiki.test.tokens").write_text("a cat\n")
    return tmp_path


def test_wikitext_layout_with_unk_and_eos(wikitext):
    corpus = load_corpus(wikitext)
    vocab = corpus.vocab
    assert vocab.itos[:3] == ("<unk>", "<eos>", "the")
    decoded = [vocab.itos[i] for i in corpus.valid.tolist()]
    assert decoded == ["the", "<unk>", "sat", "<eos>"]
    assert corpus.train.numel() == 3 + 1 + 6 + 1


def test_min_count_and_max_vocab():
    lines = [["a", "a", "b", "c"], ["a", "b"]]
    assert Vocabulary.build(lines, min_count=2).itos == ("<unk>", "<eos>", "a", "b")
    assert Vocabulary.build(lines, max_size=3).itos == ("<unk>", "<eos>", "a")


def test_single_file_split_90_5_5(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("\n".join(f"line {i}" for i in range(100)))
    corpus = load_corpus(path)
    assert (
        corpus.train.numel() == 90 * 3
        and corpus.valid.numel() == 5 * 3
        and corpus.test.numel() == 5 * 3
    )


def test_missing_corpus_files(tmp_path):
    (tmp_path / "wiki.train.tokens").write_text("x\n")
    with pytest.raises(CondensaError, match="lacks wiki.valid.tokens, wiki.test.tokens"):
        load_corpus(tmp_path)
    with pytest.raises(CondensaError, match="no corpus at"):
        load_corpus(tmp_path / "nothing.txt")


def test_empty_split_and_binary_file(tmp_path, wikitext):
    (wikitext / "wiki.test.tokens").write_text("\n\n")
    with pytest.raises(CondensaError, match="the test split"):
        load_corpus(wikitext)
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CondensaError, match="not UTF-8"):
        load_corpus(binary)


def test_batchify_and_bptt_windows():
    source = batchify(torch.arange(20), 4)  # (5, 4): columns are contiguous streams
    assert source.shape == (5, 4) and source[:, 0].tolist() == [0, 1, 2, 3, 4]
    windows = list(bptt_batches(source, 3))
    assert [tuple(x.shape) for x, _ in windows] == [(3, 4), (1, 4)]
    x, y = windows[0]
    assert torch.equal(y[:-1], x[1:])
    with pytest.raises(ConfigError, match="too few"):
        batchify(torch.arange(3), 4)


def test_language_model_trainer_learns(tmp_path):
    torch.manual_seed(0)
    stream = torch.arange(8).repeat(60)  # a perfectly predictable sequence
    trainer = LanguageModelTrainer(
        batchify(stream, 4), batchify(stream[:80], 2), bptt=8, lr=3e-2, optimizer=adam
    )
    model = LSTMLanguageModel(8, embedding_dim=16, hidden_dim=16, dropout=0.0)
    before = trainer.evaluate(model)
    trainer.train(model, 60)
    after = trainer.evaluate(model)
    assert after["perplexity"] < before["perplexity"] / 2
    assert after["perplexity"] == pytest.approx(torch.tensor(after["loss"]).exp().item())


@pytest.mark.skipif(shutil.which("bible") is None, reason="needs the bible-kjv Debian package")
def test_kjv_text_is_cached(tmp_path):
    path = kjv_text(tmp_path / "kjv.txt")
    assert path.read_text().startswith("in the beginning god created the heaven and the earth .")
    assert kjv_text(path) == path


def test_kjv_without_bible_program(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CondensaError, match="apt-get install -y bible-kjv"):
        kjv_text(tmp_path / "kjv.txt")
