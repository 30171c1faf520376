# mypy: disable-error-code="arg-type,type-var,operator"
"""Plots of a search: the accuracy GP with its level set, the objective over the feasible range."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from condensa.atomic import atomic_path
from condensa.errors import CondensaError
from condensa.search.result import SearchResult


def _scatter_trials(
    ax: Any, feasible: list, infeasible: list, x: str, y: str, scale: float = 1.0
) -> None:
    """Feasible trials as green dots, infeasible ones as red crosses (``y`` times ``scale``)."""
    ax.scatter(
        [getattr(t, x) for t in feasible],
        [scale * getattr(t, y) for t in feasible],
        c="tab:green",
        zorder=3,
        label="feasible trial",
    )
    ax.scatter(
        [getattr(t, x) for t in infeasible],
        [scale * getattr(t, y) for t in infeasible],
        c="tab:red",
        marker="x",
        zorder=3,
        label="infeasible trial",
    )


def plot_search(
    result: SearchResult,
    path: str | Path,
    *,
    title: str | None = None,
    objective_label: str = "objective",
    higher_is_better: bool = True,
) -> Path:
    """Draw ``result`` to a PNG file and return its path.

    1-D searches get two panels: the accuracy GP (mean, ±2σ band, threshold, trials,
    estimated s_acc) and the objective GP over the range deemed feasible, with the
    chosen trial. Multi-dimensional searches get the trials' objective by evaluation.
    ``higher_is_better=False`` draws a minimized objective (bytes, seconds) as its value
    rather than as the maximized score; ``objective_label`` names its axis.

    Raises:
        CondensaError: matplotlib is not installed (``pip install 'condensa[search]'``).

    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise CondensaError("plots need matplotlib: pip install 'condensa[search]'") from None
    path = Path(path)
    sign = 1.0 if higher_is_better else -1.0
    ok = [t for t in result.trials if not t.failed]
    feasible = [t for t in ok if t.feasible]
    infeasible = [t for t in ok if not t.feasible]
    view = result.surrogate
    if view is None:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([t.index for t in ok], [sign * t.objective for t in ok], color="0.6", lw=1)
        _scatter_trials(ax, feasible, infeasible, "index", "objective", sign)
        if result.best is not None:
            ax.scatter(
                [result.best.index],
                [sign * result.best.objective],
                s=160,
                facecolors="none",
                edgecolors="black",
                label="chosen",
            )
        ax.set_xlabel("evaluation")
        ax.set_ylabel(objective_label)
        ax.legend()
    else:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
        top.fill_between(
            view.grid,
            view.accuracy_low,
            view.accuracy_high,
            color="tab:blue",
            alpha=0.2,
            label="GP ±2σ",
        )
        top.plot(view.grid, view.accuracy_mean, color="tab:blue", label="GP mean")
        top.axhline(result.constraint.threshold, color="tab:red", ls="--", label="threshold")
        _scatter_trials(top, feasible, infeasible, "sparsity", "accuracy")
        if result.s_acc is not None:
            top.axvline(
                result.s_acc,
                color="black",
                ls=":",
                label=f"s_acc ≈ {result.s_acc:.3f} ± {result.s_acc_std or 0:.3f}",
            )
        low = min([t.accuracy for t in ok] + [result.constraint.threshold])
        high = max([t.accuracy for t in ok] + [result.constraint.threshold])
        pad = 0.15 * (high - low or 1.0)
        top.set_ylim(low - pad, high + pad)
        top.set_ylabel("accuracy")
        top.legend(fontsize=8, loc="lower left")
        mask = [p >= 0.5 for p in view.feasible_probability]
        xs = [g for g, m in zip(view.grid, mask, strict=True) if m]
        if xs:
            pick = lambda values: [sign * v for v, m in zip(values, mask, strict=True) if m]  # noqa: E731
            bottom.fill_between(
                xs,
                pick(view.objective_low),
                pick(view.objective_high),
                color="tab:purple",
                alpha=0.2,
                label="GP ±2σ (P(feasible) ≥ 0.5)",
            )
            bottom.plot(xs, pick(view.objective_mean), color="tab:purple", label="GP mean")
        _scatter_trials(bottom, feasible, infeasible, "sparsity", "objective", sign)
        if result.best is not None:
            bottom.scatter(
                [result.best.sparsity],
                [sign * result.best.objective],
                s=200,
                facecolors="none",
                edgecolors="black",
                lw=2,
                zorder=4,
                label="chosen",
            )
        bottom.set_xlabel("sparsity")
        bottom.set_ylabel(objective_label)
        bottom.legend(fontsize=8, loc="upper left")
    fig.suptitle(textwrap.fill(title or result.summary(), 90), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
