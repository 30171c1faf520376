from pathlib import Path

import pytest

from condensa.cli import main

# a run small enough for unit tests: 3 epochs on digits, short fine-tuning, 2 trials
TINY = """
seed = 0
threads = 1

[model]
name = "digits_cnn"
kwargs = {{ width = 0.5 }}
{checkpoint}

[data]
name = "digits"

[train]
epochs = 3

[scheme]
type = "FilterPrune"
sparsity = 0.5

[method]
name = "{method}"
{options}

[objective]
name = "{objective}"
batch_size = 16
repeats = 2
warmup = 1

[constraint]
{constraint}

[search]
budget = {budget}
bounds = [0.1, 0.9]
"""


def write_config(
    folder: Path,
    *,
    method="finetune",
    options="options = { steps = 30 }",
    objective="macs",
    constraint="max_drop = 0.5",
    budget=2,
    checkpoint="",
    name="run.toml",
) -> Path:
    path = folder / name
    path.write_text(
        TINY.format(
            method=method,
            options=options,
            objective=objective,
            constraint=constraint,
            budget=budget,
            checkpoint=checkpoint,
        )
    )
    return path


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One finished `condensa search` run directory, shared by read-only tests."""
    folder = tmp_path_factory.mktemp("run")
    config = write_config(folder, objective="throughput")
    code = main(["search", str(config), "--output", str(folder / "out"), "-q"])
    assert code == 0
    return folder / "out"
