"""Training and evaluation of recurrent language models over batchified token streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from condensa.distributed import World, all_reduce_sums
from condensa.errors import ConfigError
from condensa.optim.metrics import perplexity
from condensa.optim.trainer import SCHEDULES, ExtraLoss, OptimizerFactory, StepCallback, train_call

if TYPE_CHECKING:
    from condensa.optim.distill import Distiller

Hidden = tuple[torch.Tensor, torch.Tensor]


def _detach(hidden: Hidden | None) -> Hidden | None:
    return None if hidden is None else (hidden[0].detach(), hidden[1].detach())


def sgd_plain(params, lr: float) -> torch.optim.Optimizer:  # type: ignore[no-untyped-def]
    """Plain SGD, the usual optimizer for LSTM language models."""
    return torch.optim.SGD(params, lr=lr)


class LanguageModelTrainer:
    """Truncated-BPTT training for models ``(tokens (T, B), hidden) -> (logits, hidden)``.

    Args:
        train: batchified training tokens `(T, B)` (see :func:`condensa.data.batchify`).
        valid: batchified validation tokens `(T', B')`.
        bptt: sequence length of one step.
        lr: base learning rate; ``optimizer`` a factory ``(params, lr)``.
        schedule: LR shape within one ``train`` call (see :data:`SCHEDULES`).
        grad_clip: max gradient norm (0.25 as in the PyTorch word LM example).
        progress: show a progress bar.

    ``train`` starts each call at a random window (drawn from torch's RNG) and carries
    the hidden state between windows; ``evaluate`` returns ``loss`` (nats per token)
    and ``perplexity``.

    """

    def __init__(
        self,
        train: torch.Tensor,
        valid: torch.Tensor,
        *,
        bptt: int = 35,
        lr: float = 20.0,
        optimizer: OptimizerFactory = sgd_plain,
        schedule: str = "constant",
        grad_clip: float | None = 0.25,
        progress: bool = False,
    ) -> None:
        if train.dim() != 2 or valid.dim() != 2:
            raise ConfigError("train and valid must be batchified (T, B) token tensors")
        if not isinstance(bptt, int) or bptt < 1:
            raise ConfigError(f"bptt must be a positive integer, got {bptt!r}")
        if schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
        if valid.shape[0] < 2:
            raise ConfigError("the validation stream yields no samples")
        self.train_tokens, self.valid_tokens = train, valid
        self.bptt, self.lr, self.optimizer = bptt, float(lr), optimizer
        self.schedule, self.grad_clip, self.progress = schedule, grad_clip, progress
        self.loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
            nn.functional.cross_entropy
        )

    def train(
        self,
        model: nn.Module,
        steps: int,
        *,
        extra_loss: ExtraLoss | None = None,
        lr_scale: float = 1.0,
        distiller: Distiller | None = None,
        step_callback: StepCallback | None = None,
    ) -> float:
        """Run ``steps`` BPTT windows; returns the mean loss.

        With a ``distiller``, the teacher reads the same windows with its own carried
        hidden state and its token distributions are mixed into the loss.
        """
        device = next(model.parameters()).device
        world = World.current()
        columns = self.train_tokens.shape[1]
        if columns % world.size:
            raise ConfigError(
                f"the {columns} training token streams (batch size) are not divisible by the "
                f"{world.size} processes; use a multiple of {world.size}"
            )
        tokens = self.train_tokens[:, world.rank :: world.size]  # this rank's streams
        windows = max(1, (tokens.shape[0] - 1) // self.bptt)
        state: dict[str, Any] = {
            "position": int(torch.randint(windows, ())) * self.bptt,
            "hidden": None,
            "teacher_hidden": None,
        }
        last = tokens.shape[0] - 1

        def task_loss(step: int, net: nn.Module) -> torch.Tensor:
            if state["position"] >= last:
                state["position"], state["hidden"], state["teacher_hidden"] = 0, None, None
            start = state["position"]
            length = min(self.bptt, last - start)
            inputs = tokens[start : start + length].to(device)
            targets = tokens[start + 1 : start + 1 + length].to(device)
            state["position"] = start + length
            logits, state["hidden"] = net(inputs, _detach(state["hidden"]))
            loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            if distiller is None:
                return loss
            teacher_logits, state["teacher_hidden"] = distiller.teacher_output(
                inputs, state["teacher_hidden"]
            )
            return distiller.loss(loss, logits, teacher_logits)

        return train_call(self, model, task_loss, steps, lr_scale, extra_loss, step_callback,
                          distiller)  # fmt: skip

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``{"loss": nats per token, "perplexity": exp(loss)}`` on the validation stream.

        With several processes (and at least as many validation streams), each rank
        reads its share of the streams and the sums are all-reduced.
        """
        device = next(model.parameters()).device
        world = World.current()
        if self.valid_tokens.shape[1] < world.size:
            world = World()  # too few streams to share: every rank reads them all
        tokens = self.valid_tokens[:, world.rank :: world.size]
        was_training = model.training
        model.eval()
        hidden: Hidden | None = None
        loss_sum, count = 0.0, 0
        try:
            for i in range(0, tokens.shape[0] - 1, self.bptt):
                length = min(self.bptt, tokens.shape[0] - 1 - i)
                inputs = tokens[i : i + length].to(device)
                targets = tokens[i + 1 : i + 1 + length].to(device)
                logits, hidden = model(inputs, hidden)
                loss_sum += (
                    float(self.loss_fn(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)))
                    * targets.numel()
                )
                count += targets.numel()
        finally:
            model.train(was_training)
        totals = all_reduce_sums({"loss": loss_sum, "count": count}, world, device)
        loss = totals["loss"] / totals["count"]
        return {"loss": loss, "perplexity": perplexity(loss)}
