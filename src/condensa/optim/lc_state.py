"""The resumable state of an L-C run, saved after every iteration."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import torch

from condensa.atomic import write_bytes
from condensa.errors import ConfigError

STATE_FORMAT = "condensa.lc_state"
STATE_VERSION = 1


@dataclass
class LCState:
    """Everything needed to resume L-C after ``iteration - 1`` completed iterations.

    Attributes:
        iteration: the next iteration to run.
        mu: the penalty weight of the last completed iteration (0 after DC).
        weights: state dict of the uncompressed model ``w``.
        theta: ``{fqn: θ}`` from the last C step.
        multipliers: ``{fqn: λ}``.
        best_state: state dict of the best compressed model (with its masks).
        best_score: its validation score; ``best_iteration``: where it came from.
        history: per-iteration records.

    """

    iteration: int
    mu: float
    weights: dict[str, torch.Tensor]
    theta: dict[str, torch.Tensor]
    multipliers: dict[str, torch.Tensor]
    best_state: dict[str, torch.Tensor]
    best_score: float
    best_iteration: int
    history: list[dict[str, float]] = field(default_factory=list)

    def save(self, path: str | Path) -> None:
        """Write the state atomically (tensors and plain data only)."""
        buffer = io.BytesIO()  # in memory first: a full disk is a clean OSError, never half a file
        torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, **self.__dict__}, buffer)
        write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> LCState:
        """Read a state written by :meth:`save` (``weights_only`` unpickling).

        Raises:
            ConfigError: not an L-C state file, or from a newer version.

        """
        try:
            data = torch.load(Path(path), weights_only=True)
        except Exception as exc:
            raise ConfigError(f"cannot read L-C state {str(path)!r}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ConfigError(f"{str(path)!r} is not a Condensa L-C state file")
        if data.get("version", 0) > STATE_VERSION:
            raise ConfigError(
                f"L-C state {str(path)!r} has version {data['version']}; "
                f"this Condensa reads up to {STATE_VERSION}"
            )
        fields = {k: v for k, v in data.items() if k not in ("format", "version")}
        return cls(**fields)
