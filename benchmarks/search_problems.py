"""The benchmark suite of sparsity-search problems with known optima.

Accuracy curves have the shapes compression produces (flat then falling): logistic,
piecewise linear, logistic with a small bump, and a falling staircase of plateaus.
Objective curves are monotone (memory), step-like (hardware tile effects) or peaked.
Thresholds sit at different depths below the top accuracy. Accuracy is in percent;
measurement noise (Gaussian, in points) is added by the benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

GRID = np.linspace(0.0, 0.99, 99_001)
TOLERANCE = 1e-9
"""Feasible means accuracy >= threshold - TOLERANCE: a boundary point must not be judged
by rounding (91 - 60 * (0.75 - 0.7) is 87.99999999999999, not 88)."""


def logistic(center: float, width: float, top: float = 92.0, drop: float = 60.0) -> Callable:
    return lambda s: top - drop / (1 + np.exp(-(s - center) / width))


def piecewise(knee: float, slope: float, top: float = 91.0) -> Callable:
    return lambda s: top - slope * np.maximum(0.0, s - knee)


def bump(center: float, width: float) -> Callable:
    base = logistic(center, width)
    return lambda s: base(s) + 0.6 * np.exp(-(((s - (center - 0.25)) / 0.05) ** 2))


def plateaus(edges: tuple[float, ...], top: float = 90.0, step: float = 1.5) -> Callable:
    return lambda s: (
        top
        - step
        * sum((s > e).astype(float) if isinstance(s, np.ndarray) else float(s > e) for e in edges)
        - 40.0 * np.maximum(0.0, s - edges[-1] - 0.05)
    )


def monotone() -> Callable:
    return lambda s: 1.0 / (1.0 - np.minimum(s, 0.995))  # compression ratio: 1 / density


def steps(tile: float) -> Callable:
    return lambda s: np.floor(s / tile) * tile + 1.0  # throughput gains in tile-sized jumps


def peaked(peak: float) -> Callable:
    return lambda s: 2.0 - 8.0 * (s - peak) ** 2


@dataclass(frozen=True)
class Problem:
    name: str
    accuracy: Callable
    objective: Callable
    threshold: float
    noise: float

    def optimum(self) -> dict[str, float]:
        """True answer on a dense grid: best feasible objective and the set attaining it."""
        acc = self.accuracy(GRID)
        obj = self.objective(GRID)
        feasible = acc >= self.threshold - TOLERANCE
        best = float(obj[feasible].max())
        optimal = GRID[feasible & (obj >= best - 1e-9)]
        return {
            "objective": best,
            "lo": float(optimal.min()),
            "hi": float(optimal.max()),
            "f_min": float(obj[feasible].min()),
            "optimal": optimal,
        }

    def distance(self, s: float, optimum: dict) -> float:
        """|s - s*| to the nearest optimal sparsity."""
        return float(np.abs(optimum["optimal"] - s).min())


def suite() -> list[Problem]:
    """48 problems: 4 accuracy shapes x 3 (objective, depth) pairs x 4 noise levels."""
    curves = {
        "logistic": logistic(0.8, 0.04),
        "piecewise": piecewise(0.7, 60.0),
        "bump": bump(0.85, 0.03),
        "plateaus": plateaus((0.35, 0.6, 0.8)),
    }
    pairs = [
        ("monotone", monotone(), 1.0),
        ("steps", steps(0.125), 3.0),
        ("peaked", peaked(0.45), 1.0),
    ]
    problems = []
    for noise in (0.0, 0.1, 0.3, 1.0):
        for cname, curve in curves.items():
            top = float(curve(np.array([0.0]))[0])
            for oname, objective, depth in pairs:
                problems.append(
                    Problem(
                        f"{cname}/{oname}/-{depth:g}pt/noise{noise:g}",
                        curve,
                        objective,
                        top - depth,
                        noise,
                    )
                )
    return problems
