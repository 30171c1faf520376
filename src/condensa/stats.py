"""Model statistics: sparsity, non-zeros, bytes and MACs, per layer and in total."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

if TYPE_CHECKING:
    from rich.table import Table

from condensa.errors import ConfigError
from condensa.inputs import Inputs, check_inputs, checked_forward
from condensa.masking import CONDENSA_TYPES, copy_model, storage


@dataclass(frozen=True)
class LayerStats:
    """One module's parameters.

    Attributes:
        name: module FQN.
        kind: module class name (without the ``Parametrized`` prefix).
        shape: shape of its ``weight`` (or first parameter).
        numel: number of parameter entries (weight and bias together).
        nonzeros: entries that are not exactly zero, as the forward pass sees them.
        dense_bytes: bytes of the parameters as stored now.
        compressed_bytes: ideal bytes: non-zeros x bytes per stored value (plus int8
            scales); index overhead is not counted.
        dtype: storage dtype of the weight values.
        macs: multiply-accumulates of this module for the given input (None if unknown).
        effective_macs: MACs left once this layer's all-zero output channels and
            all-zero input channels are skipped; None if unknown. This is a per-layer
            view: a channel killed upstream is counted here only if this layer's weights
            for it are zero too (``condensa.objectives.Macs()`` counts the thinned model).

    """

    name: str
    kind: str
    shape: tuple[int, ...]
    numel: int
    nonzeros: int
    dense_bytes: int
    compressed_bytes: int
    dtype: str
    macs: int | None = None
    effective_macs: int | None = None

    @property
    def sparsity(self) -> float:
        """Fraction of zeros over the module's parameters."""
        return 1.0 - self.nonzeros / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class ModelStats:
    """Per-layer rows and totals. ``str(stats)`` renders a table."""

    layers: tuple[LayerStats, ...] = field(default_factory=tuple)
    file_bytes: int | None = None
    """Bytes of the file :func:`condensa.save` writes (when measured with ``file_bytes=True``)."""

    @property
    def numel(self) -> int:
        """Parameter entries in the model."""
        return sum(r.numel for r in self.layers)

    @property
    def nonzeros(self) -> int:
        """Non-zero parameter entries."""
        return sum(r.nonzeros for r in self.layers)

    @property
    def sparsity(self) -> float:
        """Fraction of zeros over all parameters."""
        return 1.0 - self.nonzeros / self.numel if self.numel else 0.0

    @property
    def dense_bytes(self) -> int:
        """Bytes of all parameters stored densely as they are now."""
        return sum(r.dense_bytes for r in self.layers)

    @property
    def compressed_bytes(self) -> int:
        """Ideal compressed bytes (non-zeros x value bytes, plus int8 scales)."""
        return sum(r.compressed_bytes for r in self.layers)

    @property
    def compression_ratio(self) -> float:
        """``dense_bytes / compressed_bytes``."""
        return self.dense_bytes / self.compressed_bytes if self.compressed_bytes else math.inf

    @property
    def macs(self) -> int | None:
        """Dense MACs of one forward pass of the given input, or None if not measured."""
        values = [r.macs for r in self.layers if r.macs is not None]
        return sum(values) if values else None

    @property
    def effective_macs(self) -> int | None:
        """MACs once all-zero channels are skipped, or None if not measured."""
        values = [r.effective_macs for r in self.layers if r.effective_macs is not None]
        return sum(values) if values else None

    def to_dict(self) -> dict[str, object]:
        """Plain data: totals and per-layer rows."""
        return {
            "numel": self.numel,
            "nonzeros": self.nonzeros,
            "sparsity": self.sparsity,
            "dense_bytes": self.dense_bytes,
            "compressed_bytes": self.compressed_bytes,
            "compression_ratio": self.compression_ratio,
            "macs": self.macs,
            "effective_macs": self.effective_macs,
            "file_bytes": self.file_bytes,
            "layers": [{**asdict(r), "sparsity": r.sparsity} for r in self.layers],
        }

    def table(self, *, width: int = 132) -> str:
        """The statistics as a text table."""
        from rich.console import Console

        buffer = io.StringIO()
        Console(file=buffer, width=width, force_terminal=False, color_system=None).print(
            self.rich_table()
        )
        return buffer.getvalue()

    def rich_table(self) -> Table:
        """The statistics as a ``rich`` table (for consoles)."""
        from rich.table import Table

        has_macs = self.macs is not None
        caption = (
            None
            if self.file_bytes is None
            else (
                f"saved file: {self.file_bytes:,} bytes "
                f"({self.dense_bytes / self.file_bytes:.2f}x smaller than dense)"
            )
        )
        table = Table(title="Condensa model statistics", show_footer=True, caption=caption)
        ratio = f"{self.compression_ratio:.2f}x"
        columns = [
            ("layer", "total"),
            ("type", ""),
            ("shape", ""),
            ("dtype", ""),
            ("params", f"{self.numel:,}"),
            ("non-zeros", f"{self.nonzeros:,}"),
            ("sparsity", f"{self.sparsity:.3f}"),
            ("dense B", f"{self.dense_bytes:,}"),
            ("ideal B", f"{self.compressed_bytes:,}"),
            ("ratio", ratio),
        ]
        if has_macs:
            columns += [("MACs", f"{self.macs:,}"), ("eff. MACs", f"{self.effective_macs:,}")]
        for i, (header, footer) in enumerate(columns):
            table.add_column(
                header, footer=footer, justify="left" if i < 4 else "right", no_wrap=i < 2
            )
        for r in self.layers:
            row = [
                r.name or "(root)",
                r.kind,
                "x".join(map(str, r.shape)),
                r.dtype,
                f"{r.numel:,}",
                f"{r.nonzeros:,}",
                f"{r.sparsity:.3f}",
                f"{r.dense_bytes:,}",
                f"{r.compressed_bytes:,}",
                f"{r.dense_bytes / r.compressed_bytes:.2f}x" if r.compressed_bytes else "inf",
            ]
            if has_macs:
                row += [_fmt(r.macs), _fmt(r.effective_macs)]
            table.add_row(*row)
        return table

    def __str__(self) -> str:
        return self.table()


def _fmt(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _tensor_names(module: nn.Module) -> list[str]:
    names = [n for n, p in module._parameters.items() if p is not None]  # bias=False: None
    if parametrize.is_parametrized(module):
        names += [n for n in module.parametrizations if n not in names]  # type: ignore[union-attr]
    return names


def _is_internal(module: nn.Module) -> bool:
    """Parametrization containers hold the originals of tensors reported by their owner."""
    return isinstance(module, (*CONDENSA_TYPES, parametrize.ParametrizationList))


def _nonzero_fraction(weight: torch.Tensor, dim: int) -> float:
    """Fraction of slices along ``dim`` that hold any non-zero."""
    if weight.dim() < 2:
        return 1.0
    alive = (weight != 0).movedim(dim, 0).reshape(weight.shape[dim], -1).any(dim=1)
    return float(alive.float().mean())


def _measure_macs(model: nn.Module, example_inputs: Inputs) -> dict[str, tuple[int, int]]:
    """``{module fqn: (dense MACs, effective MACs)}`` for one forward pass."""
    probe = copy_model(model).eval()
    found: dict[str, tuple[int, int]] = {}
    handles = []

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            weight = cast(torch.Tensor, module.weight).detach()
            if isinstance(module, nn.Linear):
                dense = output.numel() * module.in_features
            else:  # convolution: each output value needs in/groups * prod(kernel) MACs
                dense = output.numel() * weight[0].numel()
            keep = _nonzero_fraction(weight, 0) * _nonzero_fraction(weight, 1)
            found[name] = (int(dense), int(round(dense * keep)))

        return record

    for name, module in probe.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.inference_mode():
            checked_forward(probe, example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return found


def stats(
    model: nn.Module,
    example_inputs: Inputs | None = None,
    *,
    input_size: Sequence[int] | None = None,
    input_dtype: torch.dtype = torch.float32,
    file_bytes: bool = False,
) -> ModelStats:
    """Statistics of ``model``: per module with parameters, and totals.

    Args:
        model: any model, compressed or not (it is not modified).
        example_inputs: inputs for one forward pass, used to count MACs: a tensor, a
            tuple of positional inputs or a dict of keyword arguments (token ids and
            attention masks of a language model).
        input_size: alternatively, the shape of a single input tensor.
        input_dtype: its dtype: floats are random normal; integer dtypes (token ids,
            ``torch.long``) are zeros.
        file_bytes: also save the model to a temporary file and report its real size
            beside the ideal compressed bytes (index overhead and metadata included).

    Returns:
        A :class:`ModelStats`; ``print()`` it for a table.

    Example:
        >>> print(condensa.stats(model, input_size=(1, 1, 8, 8)))  # doctest: +SKIP

    """
    if example_inputs is not None and input_size is not None:
        raise ConfigError("give example_inputs or input_size, not both")
    inputs: Inputs | None = None
    if input_size is not None:
        if not all(isinstance(s, int) and s > 0 for s in input_size):
            raise ConfigError(f"input_size must hold positive integers, got {input_size!r}")
        param = next(model.parameters(), None)
        device = None if param is None else param.device
        inputs = (
            torch.randn(*input_size, device=device, dtype=input_dtype)
            if input_dtype.is_floating_point
            else torch.zeros(*input_size, device=device, dtype=input_dtype)
        )
    elif example_inputs is not None:
        check_inputs(example_inputs)
        inputs = example_inputs
    macs = _measure_macs(model, inputs) if inputs is not None else {}
    rows = []
    for name, module in model.named_modules():
        if _is_internal(module):
            continue
        tensor_names = _tensor_names(module)
        if not tensor_names:
            continue
        with torch.no_grad():
            tensors = {n: getattr(module, n).detach() for n in tensor_names}
        numel = sum(t.numel() for t in tensors.values())
        nonzeros = sum(int((t != 0).sum()) for t in tensors.values())
        dense = sum(t.numel() * t.element_size() for t in tensors.values())
        compressed = 0
        for n, t in tensors.items():
            info = storage(module, n)
            compressed += round(int((t != 0).sum()) * info.value_bytes) + info.scale_count * 4
        main = "weight" if "weight" in tensors else tensor_names[0]
        kind = type(module).__name__.removeprefix("Parametrized")
        dense_macs, effective_macs = macs.get(name, (None, None))
        rows.append(
            LayerStats(
                name=name,
                kind=kind,
                shape=tuple(tensors[main].shape),
                numel=numel,
                nonzeros=nonzeros,
                dense_bytes=dense,
                compressed_bytes=compressed,
                dtype=storage(module, main).dtype,
                macs=dense_macs,
                effective_macs=effective_macs,
            )
        )
    measured = None
    if file_bytes:
        import tempfile
        from pathlib import Path

        from condensa.io import save

        with tempfile.TemporaryDirectory() as folder:
            measured = save(model, Path(folder) / "model.condensa").stat().st_size
    return ModelStats(layers=tuple(rows), file_bytes=measured)
