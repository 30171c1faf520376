"""One-shot methods: Wanda, SparseGPT and GPTQ, compressing a model from calibration inputs.

No training: the model is walked block by block (:mod:`condensa.optim.calibration`);
each block's Linear targets are compressed from the statistics of their inputs (the
outputs of the blocks before, already compressed), then the block's outputs are
computed for the next. The scheme says what each target becomes, as for every method:

- ``wanda`` and ``sparsegpt`` prune: a ``Prune`` (unstructured, the target's allocated
  sparsity) or ``NMPrune`` operator; composed with a quantization, the pruned weights
  are then quantized by round-to-nearest;
- ``gptq`` quantizes: ``Quantize("int8")`` (per-row scales) or ``Quantize(dtype,
  group_size=N)``; composed after a pruning, GPTQ keeps the magnitude mask and
  quantizes the kept weights.

Targets that are not ``nn.Linear`` inside the blocks (embeddings, an untied output
layer, convolutions) are compressed directly, as ``dc`` would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import torch
from torch import nn

from condensa.errors import ConfigError
from condensa.functional.reconstruct import (
    BLOCK,
    DAMPING,
    gptq,
    nm_keep,
    row_mask,
    sparsegpt,
    wanda_scores,
)
from condensa.masking import apply_plan, copy_model
from condensa.operators import (
    NM,
    Affine,
    AffineTensor,
    ChainedTensor,
    Compressed,
    GroupAffine,
    GroupAffineTensor,
    Magnitude,
    Operator,
    PrunedTensor,
    flatten,
)
from condensa.optim.calibration import InputStatistics, check_memory, statistics, walk
from condensa.optim.result import CompressionResult, Selector
from condensa.schemes import Plan, Scheme
from condensa.schemes.plan import PlanEntry

PRUNING = (Magnitude, NM)
QUANTIZING = (Affine, GroupAffine)


def calibration_inputs(trainer: Any, samples: int) -> list[Any]:
    """``samples`` calibration inputs from ``trainer.calibration_inputs``.

    Raises:
        ConfigError: the trainer cannot give calibration inputs.

    """
    source = getattr(trainer, "calibration_inputs", None)
    if not callable(source):
        raise ConfigError(
            f"one-shot methods need calibration inputs: {type(trainer).__name__} has no "
            "calibration_inputs(samples) method (SupervisedTrainer and CausalLMTrainer do)"
        )
    batches = list(source(samples))
    if not batches:
        raise ConfigError("the trainer gave no calibration inputs")
    return batches


class OneShot:
    """Base of the one-shot methods (see the module docstring).

    Args:
        trainer: gives calibration inputs (``calibration_inputs(samples)``) and, when it
            can, evaluates the result (``evaluate``).
        samples: calibration sequences or rows (the papers use 128 sequences).
        damping: fraction of the mean Hessian diagonal added before inverting it.
        metric: the validation metric reported (default: ``perplexity`` when the
            trainer reports one, else ``accuracy``).

    Deterministic: the same model, scheme and calibration give the same result.

    """

    deterministic: ClassVar[bool] = True
    name: ClassVar[str] = ""
    handles: ClassVar[tuple[type[Operator], ...]] = ()

    def __init__(
        self,
        trainer: Any = None,
        *,
        samples: int = 64,
        damping: float = DAMPING,
        metric: str | None = None,
    ) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ConfigError(f"samples must be a positive integer, got {samples!r}")
        if not 0 <= damping < 1:
            raise ConfigError(f"damping must be in [0, 1), got {damping!r}")
        self.trainer, self.samples, self.damping = trainer, samples, float(damping)
        self.metric = metric

    def check_plan(self, plan: Plan) -> None:
        """Refuse a plan none of whose operators this method handles (before any work)."""
        handled = [
            e for e in plan if any(isinstance(op, self.handles) for op in flatten(e.operator))
        ]
        if not handled:
            kinds = sorted({type(op).__name__ for e in plan for op in flatten(e.operator)})
            valid = ", ".join(c.__name__ for c in self.handles)
            raise ConfigError(
                f"method {self.name!r} compresses with {valid}; this scheme uses "
                f"{', '.join(kinds) or 'nothing'}"
            )

    def compress(
        self, model: nn.Module, scheme: Scheme, batches: Sequence[Any] | None = None
    ) -> CompressionResult:
        """The compressed copy of ``model`` (``model`` is untouched).

        Args:
            model: the model.
            scheme: what each target becomes.
            batches: calibration inputs; default: the trainer's.

        """
        if batches is None:
            batches = calibration_inputs(self.trainer, self.samples)
        check_memory(model, batches)
        compressed = copy_model(model)
        plan = scheme.plan(compressed)
        self.check_plan(plan)
        plan.check()
        was_training = compressed.training
        compressed.eval()
        done: set[str] = set()
        for prefix, _block, run in walk(compressed, batches):
            entries = [e for e in plan if _inside(e.target.module_name, prefix)]
            linear = [e for e in entries if isinstance(e.target.module, nn.Linear)]
            linear = [
                e for e in linear if e.target.fqn not in done and e.target.param_name == "weight"
            ]
            stats = statistics(
                run, {e.target.fqn: cast(nn.Linear, e.target.module) for e in linear}
            )
            block_plan, results = Plan(), {}
            for e in linear:
                block_plan.add(e.target, e.operator)
                results[e.target.fqn] = self.solve(e, stats[e.target.fqn])
            apply_plan(compressed, block_plan, results)
            done.update(results)
        rest = Plan()
        for e in plan:
            if e.target.fqn not in done:
                rest.add(e.target, e.operator)
        if len(rest):
            apply_plan(compressed, rest)
        compressed.train(was_training)
        return self._result(compressed)

    def _result(self, compressed: nn.Module) -> CompressionResult:
        evaluate = getattr(self.trainer, "evaluate", None)
        if not callable(evaluate):
            return CompressionResult(compressed)
        metrics = evaluate(compressed)
        record = {"iteration": 0.0, **{f"val_{k}": float(v) for k, v in metrics.items()}}
        metric = self.metric or ("perplexity" if "perplexity" in metrics else "accuracy")
        return CompressionResult(compressed, [record], Selector(metric).score(metrics), 0)

    def solve(self, entry: PlanEntry, stats: InputStatistics) -> Compressed:
        """π of one Linear target from its input statistics."""
        weight = entry.target.weight.detach()
        parts: list[Compressed] = []
        current = weight
        for op in flatten(entry.operator):
            if isinstance(op, self.handles):
                part = self.one(op, current, stats)
            else:
                part = op.compress(current)
            parts.append(part)
            current = op.decompress(part)
        return parts[0] if len(parts) == 1 else ChainedTensor(tuple(parts))

    def one(self, op: Operator, weight: torch.Tensor, stats: InputStatistics) -> Compressed:
        """π of ``op`` on ``weight`` from ``stats`` (the method's own rule)."""
        raise NotImplementedError


def _inside(module_name: str, prefix: str) -> bool:
    return prefix == "" or module_name == prefix or module_name.startswith(prefix + ".")


class Wanda(OneShot):
    """Wanda: keep the weights with the largest ``|w| * ||x||``, per output row (or N:M).

    Example:
        >>> result = Wanda(trainer).compress(model, schemes.Prune(0.5))  # doctest: +SKIP

    """

    name = "wanda"
    handles = PRUNING

    def one(self, op: Operator, weight: torch.Tensor, stats: InputStatistics) -> Compressed:
        """The Wanda mask for ``op``'s sparsity or N:M pattern."""
        scores = wanda_scores(weight, stats.hessian, stats.count)
        if isinstance(op, NM):
            keep = nm_keep(scores, op.n, op.m)
        else:
            assert isinstance(op, Magnitude)
            keep = row_mask(scores, op.sparsity)
        return PrunedTensor(values=weight * keep, mask=keep)


class SparseGPT(OneShot):
    """SparseGPT: prune with second-order weight reconstruction (unstructured or N:M)."""

    name = "sparsegpt"
    handles = PRUNING

    def __init__(self, trainer: Any = None, *, block_size: int = BLOCK, **options: Any) -> None:
        super().__init__(trainer, **options)
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"block_size must be a positive integer, got {block_size!r}")
        self.block_size = block_size

    def one(self, op: Operator, weight: torch.Tensor, stats: InputStatistics) -> Compressed:
        """Reconstructed weights and their mask."""
        nm = (op.n, op.m) if isinstance(op, NM) else None
        sparsity = op.sparsity if isinstance(op, Magnitude) else 0.0
        values, keep = sparsegpt(
            weight,
            stats.hessian,
            sparsity=sparsity,
            nm=nm,
            block=self.block_size,
            damping=self.damping,
        )
        return PrunedTensor(values=values.to(weight.dtype), mask=keep)


class GPTQ(OneShot):
    """GPTQ: quantize each Linear's columns in order, compensating each one's error.

    Args:
        act_order: columns with the largest input energy first (static groups, the
            default); see :func:`condensa.functional.reconstruct.gptq`. On SmolLM2-135M,
            int4 group 128, 32 KJV windows, it took validation perplexity from 24.79 to
            22.14 (``benchmarks/llm.py``, rows ``gptq-int4-g128`` and ``gptq-seq-...``).
        trainer, samples, damping, metric: as for every one-shot method.

    """

    name = "gptq"
    handles = QUANTIZING

    def __init__(self, trainer: Any = None, *, act_order: bool = True, **options: Any) -> None:
        super().__init__(trainer, **options)
        if not isinstance(act_order, bool):
            raise ConfigError(f"act_order must be true or false, got {act_order!r}")
        self.act_order = act_order

    def one(self, op: Operator, weight: torch.Tensor, stats: InputStatistics) -> Compressed:
        """Levels and scales chosen by GPTQ (pruned zeros kept)."""
        keep = weight != 0 if bool((weight == 0).any()) else None
        if isinstance(op, GroupAffine):
            q, scale, zero, size = gptq(
                weight,
                stats.hessian,
                bits=op.bits,
                symmetric=op.symmetric,
                group_size=op.size_for(weight),
                keep=keep,
                damping=self.damping,
                act_order=self.act_order,
            )
            return GroupAffineTensor(
                q, scale, zero, size, op.bits, op.symmetric, tuple(weight.shape), weight.dtype
            )
        assert isinstance(op, Affine)
        if op.axis != 0:
            raise ConfigError(
                f"gptq quantizes output rows (axis 0); the scheme asks axis {op.axis}"
            )
        q, scale, _, _ = gptq(
            weight,
            stats.hessian,
            bits=8,
            symmetric=True,
            keep=keep,
            damping=self.damping,
            act_order=self.act_order,
        )
        return AffineTensor(q=q.to(torch.int8), scale=scale, axis=0, dtype=weight.dtype)


ONE_SHOT: Mapping[str, type[OneShot]] = {c.name: c for c in (Wanda, SparseGPT, GPTQ)}
"""The one-shot methods by name (each registered in :data:`condensa.optim.METHODS`)."""
