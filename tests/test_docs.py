"""Every code block of README.md and docs/ marked ``<!-- runnable: SETUP -->`` runs as written.

The marker sits on the line before a python fence; SETUP names the variables the block
assumes (``model``, ``images``, ``bert``...), defined below. Each block runs in its own
interpreter in an empty folder, so what it registers or writes stays there.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- runnable: (\w+) -->\n```python\n(.*?)```", re.DOTALL)

DIGITS = """
import torch
import condensa
from condensa import schemes
torch.manual_seed(0)
model = condensa.zoo.DigitsCNN().eval()
images = torch.randn(8, 1, 8, 8)
example_inputs = images[:1]
"""
SETUPS = {
    "none": "",
    "digits": DIGITS,
    "bert": DIGITS
    + """
from transformers import BertConfig, BertModel
bert = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=64)).eval()
batch = {"input_ids": torch.randint(0, 100, (2, 12))}
""",
    "search": """
def compress_and_recover(sparsity):
    return sparsity
def accuracy_of(model):
    return 0.95 - 0.3 * model**3
def throughput_of(model):
    return 1.0 + model
def evaluate(sparsity):
    return accuracy_of(sparsity), throughput_of(sparsity)
""",
}


def _blocks():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in MARKER.finditer(text):
            line = text[: match.start()].count("\n") + 1
            yield pytest.param(match.group(1), match.group(2), id=f"{path.name}:{line}")


BLOCKS = list(_blocks())


def test_the_docs_mark_blocks_and_name_known_setups():
    """The marker is in use (README and docs), and every setup it names exists."""
    files = {b.id.split(":")[0] for b in BLOCKS}
    assert "README.md" in files and len(files) >= 3
    assert {b.values[0] for b in BLOCKS} <= set(SETUPS)


@pytest.mark.parametrize(("setup", "code"), BLOCKS)
def test_a_marked_block_runs_as_written(tmp_path, setup, code):
    script = tmp_path / "block.py"
    script.write_text(SETUPS[setup] + "\n" + code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
