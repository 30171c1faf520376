"""Knowledge distillation from the uncompressed model, for every recovery method.

The student (the model being compressed) learns from the task loss mixed with the
teacher's soft targets (Hinton et al. 2015)::

    loss = (1 − weight) · task + weight · T² · KL(softmax(teacher / T) ‖ softmax(student / T))

over the last dimension of the logits, every other dimension being a sample (class
logits ``(B, C)``, token logits ``(T, B, V)``). Optionally, outputs of named modules
are matched too (mean squared error, ``feature_weight``), through the channels the
student keeps: a channel a mask has zeroed (or that thinning removed, given
``channels``) is not asked to imitate the teacher.

:class:`Distillation` is the plain configuration (what the CLI's ``[distill]``
table holds); methods bind it to the uncompressed model they were given with
:meth:`Distillation.bind`, and the trainers apply the resulting :class:`Distiller`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from condensa.errors import ConfigError
from condensa.inputs import output_logits


@dataclass(frozen=True)
class Distillation:
    """How a student learns from the uncompressed model.

    Args:
        temperature: softmax temperature ``T`` of the soft targets (> 0).
        weight: share of the soft-target term in ``[0, 1]`` (1: soft targets only).
        features: names of modules (as in ``model.named_modules()``) whose outputs the
            student matches to the teacher's.
        feature_weight: weight of the feature term (added to the mixed loss).

    Example:
        >>> FineTune(trainer, steps=3000, distill=Distillation(temperature=4))  # doctest: +SKIP

    """

    temperature: float = 4.0
    weight: float = 0.9
    features: tuple[str, ...] = field(default_factory=tuple)
    feature_weight: float = 1.0

    def __post_init__(self) -> None:
        t = self.temperature
        if (
            isinstance(t, bool)
            or not isinstance(t, (int, float))
            or not (math.isfinite(t) and t > 0)
        ):
            raise ConfigError(f"distillation temperature must be a positive number, got {t!r}")
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
            raise ConfigError(f"distillation weight must be a number in [0, 1], got {w!r}")
        fw = self.feature_weight
        if isinstance(fw, bool) or not isinstance(fw, (int, float)) or not fw >= 0:
            raise ConfigError(f"distillation feature_weight must be >= 0, got {fw!r}")
        if isinstance(self.features, str) or not all(isinstance(f, str) for f in self.features):
            raise ConfigError(
                f"distillation features must be a list of module names, got {self.features!r}"
            )
        object.__setattr__(self, "features", tuple(self.features))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | bool | None) -> Distillation | None:
        """From a config table (``true`` means the defaults; ``false``/None: no distillation).

        Raises:
            ConfigError: an unknown key or a bad value.

        """
        if spec is None or spec is False:
            return None
        if spec is True:
            return cls()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"distill must be true/false or a table, got {spec!r}")
        known = ("temperature", "weight", "features", "feature_weight")
        unknown = sorted(set(spec) - set(known))
        if unknown:
            raise ConfigError(f"unknown distill key(s) {unknown}; valid: {', '.join(known)}")
        options: dict[str, Any] = {k: tuple(v) if k == "features" else v for k, v in spec.items()}
        return cls(**options)

    def bind(
        self, teacher: nn.Module, *, channels: Mapping[str, Sequence[int]] | None = None
    ) -> Distiller:
        """A :class:`Distiller` learning from ``teacher`` (a frozen copy is taken).

        Args:
            teacher: the uncompressed model.
            channels: for a thinned student, ``{feature module: kept channel indices}``
                of the teacher's dimension 1 (what the student's channels correspond to).

        Raises:
            ConfigError: a feature name that is not a module of ``teacher``.

        """
        return Distiller(self, teacher, channels or {})


def soft_target_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, mean over samples.

    Every dimension but the last is a sample dimension; zero when the logits agree.
    """
    if student.shape != teacher.shape:
        raise ConfigError(
            f"student logits {tuple(student.shape)} and teacher logits "
            f"{tuple(teacher.shape)} differ in shape"
        )
    classes = student.shape[-1]
    s = F.log_softmax(student.reshape(-1, classes) / temperature, dim=-1)
    t = F.log_softmax(teacher.reshape(-1, classes).detach() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


class Distiller:
    """A :class:`Distillation` bound to a frozen teacher (see :meth:`Distillation.bind`).

    Trainers call :meth:`teacher_output` on each batch (no gradient, eval mode),
    :meth:`loss` to mix it into the task loss, and wrap training in :meth:`watch` when
    features are matched.
    """

    def __init__(
        self,
        spec: Distillation,
        teacher: nn.Module,
        channels: Mapping[str, Sequence[int]],
    ) -> None:
        from condensa.masking import copy_model

        self.spec = spec
        self.teacher = copy_model(teacher).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        names = dict(self.teacher.named_modules())
        missing = [f for f in spec.features if f not in names]
        if missing:
            raise ConfigError(
                f"distillation feature module(s) {missing} not found in {type(teacher).__name__}"
            )
        unknown = sorted(set(channels) - set(spec.features))
        if unknown:
            raise ConfigError(f"channels given for {unknown}, which are not distilled features")
        self.channels = {k: torch.as_tensor(list(v), dtype=torch.long) for k, v in channels.items()}
        self._student: dict[str, torch.Tensor] = {}
        self._teacher: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def teacher_output(self, *args: Any, **kwargs: Any) -> Any:
        """The teacher's output on the same inputs as the student (no gradient)."""
        return self.teacher(*args, **kwargs)

    def loss(
        self, task_loss: torch.Tensor, student_output: Any, teacher_output: Any
    ) -> torch.Tensor:
        """The mixed loss: task, soft targets and (when watched) matched features."""
        w = self.spec.weight
        total = task_loss * (1.0 - w) if w < 1.0 else task_loss * 0.0
        if w > 0.0:
            soft = soft_target_loss(
                output_logits(student_output), output_logits(teacher_output), self.spec.temperature
            )
            total = total + w * soft
        if self.spec.features and self.spec.feature_weight > 0:
            total = total + self.spec.feature_weight * self.feature_loss()
        return total

    def feature_loss(self) -> torch.Tensor:
        """Mean over features of the MSE through the student's live channels."""
        terms = []
        for name in self.spec.features:
            if name not in self._student or name not in self._teacher:
                raise ConfigError(f"distillation feature {name!r} produced no output this step")
            s, t = self._student[name], self._teacher[name]
            if name in self.channels:
                t = t.index_select(1, self.channels[name].to(t.device))
            if s.shape != t.shape:
                raise ConfigError(
                    f"distillation feature {name!r}: student {tuple(s.shape)} vs teacher "
                    f"{tuple(t.shape)}; give channels={{{name!r}: kept indices}} for a "
                    "thinned student"
                )
            if s.dim() >= 2:  # channels the student has zeroed everywhere are not matched
                live = s.detach().transpose(0, 1).reshape(s.shape[1], -1).ne(0).any(dim=1)
                shape = [1, -1] + [1] * (s.dim() - 2)
                live = live.reshape(shape).to(s.dtype)
                count = live.sum() * (s.numel() / s.shape[1])
                terms.append(((s - t) * live).pow(2).sum() / count.clamp(min=1.0))
            else:
                terms.append((s - t).pow(2).mean())
        self._student.clear()
        self._teacher.clear()
        return torch.stack(terms).mean()

    @contextlib.contextmanager
    def watch(self, student: nn.Module) -> Iterator[None]:
        """Record the student's and the teacher's feature outputs while inside."""
        if not self.spec.features:
            yield
            return
        student_modules = dict(student.named_modules())
        missing = [f for f in self.spec.features if f not in student_modules]
        if missing:
            raise ConfigError(f"distillation feature module(s) {missing} not found in the student")
        teacher_modules = dict(self.teacher.named_modules())
        handles = []

        def recorder(store: dict[str, torch.Tensor], name: str) -> Any:
            def hook(module: nn.Module, args: Any, output: Any) -> None:
                store[name] = output_logits(output)

            return hook

        try:
            for name in self.spec.features:
                handles.append(
                    student_modules[name].register_forward_hook(recorder(self._student, name))
                )
                handles.append(
                    teacher_modules[name].register_forward_hook(recorder(self._teacher, name))
                )
            yield
        finally:
            for handle in handles:
                handle.remove()
            self._student.clear()
            self._teacher.clear()
