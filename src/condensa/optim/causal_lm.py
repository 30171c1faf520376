"""Calibration, evaluation and short training of decoder language models on plain text.

For Hugging Face causal LMs (``model(input_ids=...)`` returning ``.logits``) and any
tokenizer with ``encode(text, add_special_tokens=False)``. Metrics:

- ``perplexity`` (and ``loss``, nats per token) over fixed non-overlapping windows of
  the evaluation text's first ``eval_tokens`` tokens;
- ``last_word``: the fraction of held-out verses (or lines) whose final word the model
  predicts exactly, token by token, from the text before it (a LAMBADA-style test on
  local text).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from condensa.errors import ConfigError
from condensa.masking import bake
from condensa.optim.trainer import ExtraLoss

if TYPE_CHECKING:
    from condensa.optim.distill import Distiller

_WORD = re.compile(r"^(.*\S)\s+([A-Za-z][A-Za-z'’-]*)[^A-Za-z]*$")


def _texts(value: str | Sequence[str], what: str) -> list[str]:
    texts = [value] if isinstance(value, str) else list(value)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ConfigError(f"{what} must be a string or a list of strings")
    return texts


def last_word_items(texts: Sequence[str], count: int) -> list[tuple[str, str]]:
    """``(context, word)`` for ``count`` texts spread evenly: each text minus its last word."""
    items = []
    for text in texts:
        found = _WORD.match(text.strip())
        if found and len(found.group(1).split()) >= 3:
            items.append((found.group(1), found.group(2)))
    if not items:
        return []
    step = max(1, len(items) // count)
    return items[::step][:count]


class CausalLMTrainer:
    """Text in, calibration windows and metrics out, for decoder language models.

    Args:
        tokenizer: ``encode(text, add_special_tokens=False) -> list[int]``.
        calibration: text (or lines) the one-shot methods and training read.
        evaluation: held-out text (or lines) for the metrics.
        window: tokens per calibration and evaluation window.
        eval_tokens: tokens of the evaluation text scored for perplexity.
        last_words: held-out lines scored for last-word accuracy (0: skip).
        batch_size: windows per forward pass.
        lr: AdamW learning rate of :meth:`train`.
        seed: picks the calibration windows (a private generator; the global RNG is
            left alone).

    Raises:
        ConfigError: empty texts, bad sizes, or an evaluation text shorter than one window.

    """

    def __init__(
        self,
        tokenizer: Any,
        calibration: str | Sequence[str],
        evaluation: str | Sequence[str],
        *,
        window: int = 512,
        eval_tokens: int = 4096,
        last_words: int = 200,
        batch_size: int = 4,
        lr: float = 1e-5,
        seed: int = 0,
    ) -> None:
        for name, value in (
            ("window", window),
            ("eval_tokens", eval_tokens),
            ("batch_size", batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not callable(getattr(tokenizer, "encode", None)):
            raise ConfigError(f"tokenizer {type(tokenizer).__name__} has no encode(text) method")
        self.tokenizer, self.window, self.batch_size = tokenizer, window, batch_size
        self.lr, self.seed = float(lr), seed
        calibration_texts = _texts(calibration, "calibration")
        evaluation_texts = _texts(evaluation, "evaluation")
        self.calibration_tokens = self._encode("\n".join(calibration_texts))
        evaluation_tokens = self._encode("\n".join(evaluation_texts))
        if evaluation_tokens.numel() < window + 1:
            raise ConfigError(
                f"the evaluation text has {evaluation_tokens.numel()} tokens; at least one "
                f"window of {window + 1} is needed"
            )
        self.evaluation_tokens = evaluation_tokens[: max(eval_tokens, window)]
        self.last_word_items = last_word_items(evaluation_texts, last_words) if last_words else []

    def _encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer.encode(text, add_special_tokens=False), dtype=torch.long)

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model whose vocabulary the tokenizer's ids overflow.

        Raises:
            ConfigError: a token id at or beyond the model's embedding rows.

        """
        embeddings = getattr(model, "get_input_embeddings", lambda: None)()
        rows = getattr(embeddings, "num_embeddings", None)
        largest = int(max(self.calibration_tokens.max(), self.evaluation_tokens.max()))
        with contextlib.suppress(TypeError):  # the tokenizer's own vocabulary, when it says
            largest = max(largest, len(self.tokenizer) - 1)
        if rows is not None and largest >= rows:
            raise ConfigError(
                f"the tokenizer does not match the model: it gives token id {largest:,} but "
                f"the model embeds {rows:,} tokens; use the model's own tokenizer"
            )

    def calibration_inputs(self, samples: int) -> list[torch.Tensor]:
        """``samples`` windows of ``window`` tokens drawn from the calibration text, in batches.

        Raises:
            ConfigError: the calibration text is shorter than ``samples`` windows.

        """
        tokens = self.calibration_tokens
        if tokens.numel() < samples * self.window:
            raise ConfigError(
                f"the calibration text has {tokens.numel():,} tokens; {samples} samples of "
                f"{self.window} need {samples * self.window:,} (give more text, fewer samples "
                "or a smaller window)"
            )
        generator = torch.Generator().manual_seed(self.seed)
        starts = torch.randint(0, tokens.numel() - self.window + 1, (samples,), generator=generator)
        windows = torch.stack([tokens[s : s + self.window] for s in starts.tolist()])
        return list(windows.split(self.batch_size))

    def _device(self, model: nn.Module) -> torch.device:
        return next(model.parameters()).device

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``loss``, ``perplexity`` and (when lines were given) ``last_word`` accuracy.

        A compressed model is evaluated through a baked copy (the same outputs, without
        recomputing masks and fake quantization at every forward pass).
        """
        self.check_model(model)
        if any(parametrize.is_parametrized(m) for m in model.modules()):
            model = bake(model)
        device = self._device(model)
        was_training = model.training
        model.eval()
        usable = self.evaluation_tokens.numel() // self.window * self.window
        windows = self.evaluation_tokens[:usable].reshape(-1, self.window)
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in windows.split(self.batch_size):
                batch = batch.to(device)
                logits = model(input_ids=batch).logits[:, :-1]
                loss = nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(),
                    batch[:, 1:].reshape(-1),
                    reduction="sum",
                )
                total += float(loss)
                count += batch[:, 1:].numel()
            metrics = {"loss": total / count}
            metrics["perplexity"] = float(torch.tensor(metrics["loss"]).exp())
            if self.last_word_items:
                metrics["last_word"] = self._last_word(model, device)
        model.train(was_training)
        return metrics

    def _last_word(self, model: nn.Module, device: torch.device) -> float:
        hits = 0
        for context, word in self.last_word_items:
            prefix = self._encode(context)
            target = self._encode(" " + word)
            ids = torch.cat([prefix, target]).unsqueeze(0).to(device)
            predicted = model(input_ids=ids).logits[0, prefix.numel() - 1 : -1].argmax(-1)
            hits += int(torch.equal(predicted.cpu(), target))
        return hits / len(self.last_word_items)

    def train(
        self,
        model: nn.Module,
        steps: int,
        *,
        extra_loss: ExtraLoss | None = None,
        lr_scale: float = 1.0,
        distiller: Distiller | None = None,
    ) -> float:
        """``steps`` AdamW steps of next-token loss on calibration windows; mean loss.

        With a ``distiller`` the loss mixes in the teacher's next-token distribution on
        the same windows (:mod:`condensa.optim.distill`).
        """
        self.check_model(model)
        device = self._device(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr * lr_scale, weight_decay=0.0)
        generator = torch.Generator().manual_seed(self.seed + 1)
        tokens = self.calibration_tokens
        model.train()
        losses = []
        for _ in range(steps):
            starts = torch.randint(
                0, tokens.numel() - self.window, (self.batch_size,), generator=generator
            )
            batch = torch.stack([tokens[s : s + self.window + 1] for s in starts.tolist()])
            batch = batch.to(device)
            logits = model(input_ids=batch[:, :-1]).logits
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1)
            )
            if distiller is not None:
                teacher = distiller.teacher_output(input_ids=batch[:, :-1])
                loss = distiller.loss(loss, logits.float(), teacher.logits.float())
            if extra_loss is not None:
                loss = loss + extra_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        model.eval()
        return sum(losses) / max(len(losses), 1)
