"""Size objectives: bytes of the saved file, and MACs honouring masks."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from torch import nn

from condensa.errors import ConfigError
from condensa.inputs import Inputs
from condensa.objectives.measurement import Measurement
from condensa.objectives.registry import register_objective

MAC_MODES = ("effective", "sparse", "dense")


@register_objective("file-size")
@dataclass(frozen=True)
class FileSize:
    """Bytes of the file :func:`condensa.save` writes for the model (lower is better).

    Registered as ``"file-size"`` (storage, not the memory a forward pass takes).
    """

    monotone: ClassVar[bool] = True  # fewer kept weights never make a file larger

    def __call__(self, model: nn.Module, example_inputs: Inputs | None = None) -> Measurement:
        """Save ``model`` to a temporary file and measure it."""
        from condensa.io import save

        with tempfile.TemporaryDirectory() as folder:
            path = save(model, Path(folder) / "model.condensa")
            size = path.stat().st_size
        return Measurement(float(size), "bytes", higher_is_better=False)


@register_objective("macs")
@dataclass(frozen=True)
class Macs:
    """Multiply-accumulates of one forward pass of ``example_inputs`` (lower is better).

    Args:
        mode: ``"effective"``: MACs of the deployable model (thinned when whole filters
            or neurons are pruned: exactly what thinning gives);
            ``"sparse"`` also skips every zero weight (ideal sparse kernels);
            ``"dense"`` ignores masks.

    """

    monotone: ClassVar[bool] = True  # fewer kept structures never add MACs

    mode: str = "effective"

    def __post_init__(self) -> None:
        if self.mode not in MAC_MODES:
            raise ConfigError(f"mode = {self.mode!r} is not valid; valid: {', '.join(MAC_MODES)}")

    def __call__(self, model: nn.Module, example_inputs: Inputs) -> Measurement:
        """Count MACs for ``example_inputs``."""
        from condensa.stats import stats

        result = stats(model, example_inputs)
        value: float | None
        if self.mode == "dense":
            value = result.macs
        elif self.mode == "effective":
            from condensa.thinning.deploy import deployable

            value = stats(deployable(model, example_inputs), example_inputs).macs
        else:
            value = sum(
                (r.macs or 0) * (r.nonzeros / r.numel if r.numel else 1.0) for r in result.layers
            )
        return Measurement(float(value or 0), "MACs", higher_is_better=False)
