"""A small training abstraction: the Trainer protocol and a supervised default."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from condensa.distributed import (
    World,
    all_reduce_sums,
    data_parallel,
    evaluation_shard,
    sync_buffers,
)
from condensa.errors import CondensaError, ConfigError, check_int
from condensa.optim.metrics import Metric, accuracy_metrics

if TYPE_CHECKING:
    from condensa.optim.distill import Distiller

ExtraLoss = Callable[[], torch.Tensor]
StepCallback = Callable[[int], None]
OptimizerFactory = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]
SCHEDULES = ("constant", "cosine", "linear")
"""Learning-rate shapes inside one :meth:`SupervisedTrainer.train` call."""


class NonFiniteLossError(CondensaError, FloatingPointError):
    """Training produced a NaN or infinite loss."""


@runtime_checkable
class Trainer(Protocol):
    """What compression methods need from training code.

    ``train`` runs ``steps`` mini-batch steps on ``model`` with a fresh optimizer,
    adding ``extra_loss()`` to the task loss when given, with the learning rate
    multiplied by ``lr_scale``; it returns the mean training loss. ``evaluate``
    returns a dict of metrics on held-out data.

    Trainers may also accept two keyword arguments of ``train`` that some methods
    need (the built-in trainers do; :func:`train_options` checks): ``distiller`` (a
    :class:`~condensa.optim.distill.Distiller` mixing the teacher's soft targets into
    the task loss) and ``step_callback`` (called with the number of steps done after
    each optimizer step).
    """

    def train(
        self,
        model: nn.Module,
        steps: int,
        *,
        extra_loss: ExtraLoss | None = None,
        lr_scale: float = 1.0,
    ) -> float:
        """Train ``model`` in place for ``steps`` steps."""
        ...

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Metrics of ``model`` on held-out data."""
        ...


def train_options(trainer: Trainer, **options: Any) -> dict[str, Any]:
    """The optional ``train`` keyword arguments that are set, checked against ``trainer``.

    Options whose value is None are dropped, so a trainer without them still works
    when they are not used.

    Raises:
        ConfigError: ``trainer.train`` does not accept an option that is set.

    """
    import inspect

    given = {k: v for k, v in options.items() if v is not None}
    if not given:
        return {}
    parameters = inspect.signature(trainer.train).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return given
    missing = sorted(k for k in given if k not in parameters)
    if missing:
        raise ConfigError(
            f"{type(trainer).__name__}.train does not accept {', '.join(missing)}; "
            "SupervisedTrainer and LanguageModelTrainer do (see the Trainer protocol)"
        )
    return given


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches of ``loader`` pass after pass (a distributed sampler reshuffles each pass)."""
    sampler = getattr(loader, "sampler", None)
    epoch = 0
    while True:
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)  # type: ignore[union-attr]
        epoch += 1
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ConfigError("the training loader yields no batches")


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Multiplier of the base LR at ``step`` of ``steps`` for a schedule in :data:`SCHEDULES`."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / steps))
    if schedule == "linear":
        return 1.0 - step / steps
    return 1.0


TaskLoss = Callable[[int, nn.Module], torch.Tensor]
"""``task_loss(step, net)``: the loss of one batch, computed by calling ``net`` (the model,
or its DistributedDataParallel wrapper) forward."""


def run_steps(
    model: nn.Module,
    task_loss: TaskLoss,
    steps: int,
    *,
    optimizer: torch.optim.Optimizer,
    schedule: str,
    grad_clip: float | None,
    extra_loss: ExtraLoss | None,
    progress: bool,
    step_callback: StepCallback | None = None,
) -> float:
    """The training loop every trainer shares; returns the mean loss.

    Each step sets the learning rate from ``schedule``, adds ``extra_loss()`` to
    ``task_loss(step, net)``, refuses a non-finite loss before applying it, clips the
    gradient norm, steps ``optimizer`` and then calls ``step_callback(step + 1)``
    (the number of steps done; gradual pruning updates its masks there). With several
    processes (see :mod:`condensa.distributed`), ``net`` is ``model`` wrapped in
    DistributedDataParallel, so gradients are averaged across ranks and every rank
    holds the same weights after each step; otherwise ``net`` is ``model``.

    Raises:
        ConfigError: ``steps`` is not a positive integer.
        NonFiniteLossError: the loss became NaN/inf (that step is not applied).

    """
    from rich.progress import Progress

    check_int("steps", steps)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    model.train()
    world = World.current()
    net = data_parallel(model, world)
    total = 0.0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("training", total=steps)
        for step in range(steps):
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * lr_factor(schedule, step, steps)
            loss = task_loss(step, net)
            if extra_loss is not None:
                loss = loss + extra_loss()
            value = _agreed_loss(loss, world)
            if not math.isfinite(value):
                raise NonFiniteLossError(f"non-finite training loss {value} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if step_callback is not None:
                step_callback(step + 1)
            total += value
            bar.update(task, advance=1, description=f"training loss {value:.4f}")
    return total / steps


def _agreed_loss(loss: torch.Tensor, world: World) -> float:
    """The step's loss averaged over the ranks, so every rank takes the same decisions."""
    if not world.distributed:
        return float(loss.detach())
    value = loss.detach().clone().reshape(1)
    torch.distributed.all_reduce(value)
    return float(value) / world.size


def train_call(
    trainer: Any,
    model: nn.Module,
    task_loss: TaskLoss,
    steps: int,
    lr_scale: float,
    extra_loss: ExtraLoss | None,
    step_callback: StepCallback | None,
    distiller: Distiller | None,
) -> float:
    """One ``train`` call of a built-in trainer, over :func:`run_steps`.

    A fresh optimizer at ``lr · lr_scale`` and the trainer's schedule; the distiller (if
    any) watches the features it matches.
    """
    with contextlib.nullcontext() if distiller is None else distiller.watch(model):
        return run_steps(
            model,
            task_loss,
            steps,
            optimizer=trainer.optimizer(model.parameters(), trainer.lr * lr_scale),
            schedule=trainer.schedule,
            grad_clip=trainer.grad_clip,
            extra_loss=extra_loss,
            progress=trainer.progress,
            step_callback=step_callback,
        )


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, loader: Iterable[Any], batches: int) -> bool:
    """Recompute BatchNorm running statistics from ``batches`` ``(inputs, ...)`` batches."""
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    was_training = model.training
    model.train()
    device = next(model.parameters()).device
    source = _cycle(loader)
    try:
        for _ in range(batches):
            model(next(source)[0].to(device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    sync_buffers(model, World.current())  # every rank keeps rank 0's statistics
    return True


def sgd(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum 0.9 and weight decay 5e-4 (the usual CNN recipe)."""
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


def adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam with default betas."""
    return torch.optim.Adam(params, lr=lr)


class SupervisedTrainer:
    """Training over DataLoaders: a fresh optimizer per call, an LR schedule per call.

    Args:
        train_loader: yields ``(inputs, targets)`` batches (cycled as needed).
        val_loader: the same, for :meth:`evaluate`.
        lr: base learning rate.
        optimizer: factory ``(params, lr) -> Optimizer`` (default :func:`adam`).
        schedule: LR shape within one ``train`` call: ``"constant"``, ``"cosine"``
            (to 0) or ``"linear"`` (to 0).
        loss_fn: task loss ``(outputs, targets) -> scalar`` (default cross-entropy).
        metrics: ``(outputs, targets) -> {name: batch sum}`` for :meth:`evaluate`
            (default: top-1/top-5 accuracy).
        grad_clip: max gradient norm, or None.
        progress: show a progress bar (rich) during training.

    Example:
        >>> trainer = SupervisedTrainer(train_loader, val_loader, lr=1e-3)  # doctest: +SKIP

    """

    def __init__(
        self,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any],
        *,
        lr: float = 1e-3,
        optimizer: OptimizerFactory = adam,
        schedule: str = "constant",
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        metrics: Metric = accuracy_metrics,
        grad_clip: float | None = None,
        progress: bool = False,
    ) -> None:
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"lr must be a positive number, got {lr!r}")
        if schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.lr = float(lr)
        self.optimizer = optimizer
        self.schedule = schedule
        self.loss_fn = loss_fn or nn.functional.cross_entropy
        self.metrics = metrics
        self.grad_clip = grad_clip
        self.progress = progress

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
        """Run ``steps`` steps; returns the mean loss (task loss plus extra loss).

        With a ``distiller`` the task loss is mixed with the teacher's soft targets;
        ``step_callback(done)`` runs after each optimizer step.

        Raises:
            ConfigError: ``steps`` is not a positive integer.
            NonFiniteLossError: the loss became NaN/inf (the step is not applied).

        """
        device = next(model.parameters()).device
        batches = _cycle(self.train_loader)

        def task_loss(step: int, net: nn.Module) -> torch.Tensor:
            inputs, targets = next(batches)
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = net(inputs)
            loss = self.loss_fn(outputs, targets)
            if distiller is None:
                return loss
            return distiller.loss(loss, outputs, distiller.teacher_output(inputs))

        return train_call(self, model, task_loss, steps, lr_scale, extra_loss, step_callback,
                          distiller)  # fmt: skip

    @torch.no_grad()
    def calibrate(self, model: nn.Module, batches: int = 20) -> bool:
        """Re-estimate BatchNorm running statistics on ``batches`` training batches.

        A compressed model (pruned filters, changed weights) no longer matches the
        statistics its BatchNorm layers gathered before compression; this recomputes
        them (cumulative average) without changing any weight. Returns False when the
        model has no BatchNorm layer tracking statistics.
        """
        return calibrate_batchnorm(model, self.train_loader, batches)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``{"loss": mean loss, **metrics}`` over the validation loader.

        With the default accuracy metrics, ``"accuracy_se"`` and ``"top5_se"`` are their
        standard errors over the validation samples. With several processes each rank
        evaluates its share of a DataLoader's samples and the sums are all-reduced, so
        every rank returns the same metrics.

        Raises:
            ConfigError: the validation loader yields no samples.

        """
        device = next(model.parameters()).device
        world = World.current()
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        loss_sum, count = 0.0, 0
        try:
            for inputs, targets in evaluation_shard(self.val_loader, world):
                inputs, targets = inputs.to(device), targets.to(device)
                outputs = model(inputs)
                n = int(targets.numel())
                loss_sum += float(self.loss_fn(outputs, targets)) * n
                for name, value in self.metrics(outputs, targets).items():
                    sums[name] = sums.get(name, 0.0) + value
                count += n
        finally:
            model.train(was_training)
        totals = all_reduce_sums({**sums, " loss": loss_sum, " count": count}, world, device)
        loss_sum, count = totals.pop(" loss"), round(totals.pop(" count"))
        sums = totals
        if count == 0:
            raise ConfigError("the validation loader yields no samples")
        out = {"loss": loss_sum / count, **{k: v / count for k, v in sums.items()}}
        if self.metrics is accuracy_metrics:
            # standard errors of the top-k fractions: sqrt(p (1 - p) / n), which is what
            # a bootstrap over the validation samples estimates; the search uses them
            for name in sums:
                p = out[name]
                out[f"{name}_se"] = math.sqrt(max(p * (1.0 - p), 0.0) / count)
        return out
