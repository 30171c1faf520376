"""`condensa search` on a decoder language model: a local Hugging Face folder and text files.

A tiny random Llama (grouped key/value heads) with a word-level tokenizer stands in for
SmolLM2; the run uses a one-shot method and a perplexity constraint, and its mistakes
(no model path, a tokenizer that does not match, too little calibration text) are one
clean error each, before anything is written.
"""

import json
import random

import pytest

from condensa.cli import main

transformers = pytest.importorskip("transformers")

from ..optim.test_oneshot import VOCAB, tiny_llama  # noqa: E402

CONFIG = """
seed = 0
threads = 1

[model]
name = "hf"
path = "{model}"

[data]
name = "causal-lm"
calibration = "{calibration}"
evaluation = "{evaluation}"
window = 32
eval_tokens = 256
last_words = 10

[train]
epochs = 0

[scheme]
type = "Prune"
sparsity = 0.5
allocation = "uniform"
types = ["Linear"]
exclude = ["^lm_head$"]

[method]
name = "{method}"
options = {{ samples = {samples} }}

[objective]
name = "file-size"

[constraint]
metric = "perplexity"
max_relative_drop = 0.5

[search]
budget = 2
bounds = [0.1, 0.8]
"""


def _tokenizer(vocab):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]"] + [f"w{i}" for i in range(vocab - 1)]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    tiny_llama().save_pretrained(root / "model")
    _tokenizer(VOCAB).save_pretrained(root / "model")
    tiny_llama().save_pretrained(root / "wide")
    _tokenizer(VOCAB * 4).save_pretrained(root / "wide")  # ids past the model's vocabulary
    rng = random.Random(0)
    for name, lines in (("calib.txt", 300), ("eval.txt", 300), ("short.txt", 3)):
        words = [
            " ".join(f"w{rng.randrange(1, VOCAB - 1)}" for _ in range(12)) for _ in range(lines)
        ]
        (root / name).write_text("\n".join(words))
    return root


def _config(files, **changes):
    values = {
        "model": files / "model",
        "calibration": files / "calib.txt",
        "evaluation": files / "eval.txt",
        "method": "sparsegpt",
        "samples": 8,
        **changes,
    }
    path = files / f"run{abs(hash(str(sorted(changes.items()))))}.toml"
    path.write_text(CONFIG.format(**values))
    return path


@pytest.mark.slow
def test_a_one_shot_search_on_a_local_decoder_model(files, tmp_path, capsys):
    """The run finishes: a chosen sparsity under the perplexity constraint, its report written."""
    out = tmp_path / "out"
    assert main(["search", str(_config(files)), "-o", str(out)]) == 0, capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "perplexity" and summary["chosen"] is not None
    assert summary["baseline"]["validation"] > 1
    assert (out / "report.html").is_file() and (out / "best" / "model.condensa").is_file()
    assert "as given (train.epochs = 0)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "changes, phrase",
    [
        ({"model": "/nonexistent/model"}, "does not exist (nothing is downloaded)"),
        ({"calibration": "/nonexistent.txt"}, "data.calibration = '/nonexistent.txt': no such"),
        ({"model": "WIDE"}, "the tokenizer does not match the model"),
        ({"calibration": "SHORT", "samples": 64}, "samples of 32 need"),
    ],
)
def test_bad_decoder_runs_are_one_clean_line(files, tmp_path, capsys, changes, phrase):
    """A missing model or file, a mismatched tokenizer, too little calibration text: exit 2."""
    names = {"WIDE": files / "wide", "SHORT": files / "short.txt"}
    changes = {k: names.get(v, v) for k, v in changes.items()}
    out = tmp_path / "out"
    assert main(["search", str(_config(files, **changes)), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("condensa: error:") and phrase in err, err
