"""`condensa report RUN_DIR`: report.md and a self-contained report.html from summary.json."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from condensa.atomic import atomic_path, write_text
from condensa.cli.record import RunReport, Speed
from condensa.cli.rundir import RunDir


def _bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def _speed(m: Speed | None) -> str:
    if m is None:
        return "—"
    return f"{m.value:.4g} ± {m.spread / 2:.2g} {m.unit}"


def _format_metric(value: float | None, name: str) -> str:
    if value is None:
        return "—"
    return (
        f"{value:.2%}" if name.startswith("accuracy") or name.startswith("top") else f"{value:.4g}"
    )


def comparison_rows(report: RunReport) -> list[list[str]]:
    """Rows of the baseline vs chosen table (first row: header)."""
    metric, base, chosen = report.metric, report.baseline, report.chosen
    rows = [["", "baseline", "chosen" if chosen else "chosen (none feasible)"]]

    def row(label: str, fmt: Any, key: str) -> None:
        rows.append([label, fmt(getattr(base, key)), fmt(getattr(chosen, key)) if chosen else "—"])

    row(
        f"{metric} (validation: {report.validation_source})",
        lambda v: _format_metric(v, metric),
        "validation",
    )
    row(f"{metric} (test)", lambda v: _format_metric(v, metric), "test")
    row("sparsity", lambda v: "—" if v is None else f"{v:.4f}", "sparsity")
    row("non-zero parameters", lambda v: "—" if v is None else f"{v:,}", "nonzeros")
    row(
        "parameters after thinning",
        lambda v: "—" if v is None else f"{v:,}",
        "deployable_parameters",
    )
    row("MACs per sample (deployable)", lambda v: "—" if v is None else f"{v:,.0f}", "macs")
    row("bytes on disk", _bytes, "file_bytes")
    row("ideal bytes (non-zeros)", _bytes, "ideal_bytes")
    row("throughput (median ± IQR/2)", _speed, "throughput")
    if chosen:
        rows.append(["compression (file bytes)", "1.00x", f"{chosen.file_ratio:.2f}x"])
        rows.append(
            ["compression (ideal, fp32 dense / non-zeros)", "1.00x", f"{chosen.ideal_ratio:.2f}x"]
        )
        rows.append(["MACs reduction", "1.00x", f"{chosen.macs_ratio:.2f}x"])
        rows.append(["measured speedup", "1.00x", f"{chosen.speedup:.2f}x"])
    return rows


def trial_rows(report: RunReport) -> list[list[str]]:
    """Rows of the trial table (first row: header)."""
    rows = [["#", "stage", "sparsity", report.metric, "feasible", "objective", "file", "time"]]
    for t in report.trials:
        where = [t.stage, _point(t.sparsity)]
        if t.error:
            rows.append([str(t.index + 1), *where, "failed", "—", t.error[:60], "—",
                         f"{t.wall_s:.1f}s"])  # fmt: skip
            continue
        mark = " (chosen)" if t.index == report.best_trial else ""
        rows.append(
            [
                f"{t.index + 1}{mark}",
                *where,
                _format_metric(t.accuracy, report.metric),
                "yes" if t.feasible else "no",
                f"{t.measurement.value:.4g} {t.measurement.unit}" if t.measurement else "—",
                _bytes(t.extra.get("file_bytes")),
                f"{t.wall_s:.1f}s",
            ]
        )
    return rows


def _point(sparsity: Any) -> str:
    if isinstance(sparsity, tuple):
        return ", ".join(f"{v:.4f}" for v in sparsity)
    return f"{sparsity:.4f}"


def recovery_rows(report: RunReport) -> list[list[str]]:
    """Convergence of the method on the chosen model (first row: header; [] if none)."""
    records = report.recovery
    if records is None and report.best is not None:
        records = report.best.extra.get("recovery")
    if not records:
        return []
    columns = [c for c in ("iteration", "steps", "mu", "relative_distance", "sparsity", "val")
               if any(c in r for r in records)]  # fmt: skip
    names = {"relative_distance": "‖w−θ‖/‖θ‖", "val": f"validation {report.metric}",
             "mu": "μ"}  # fmt: skip
    rows = [[names.get(c, c) for c in columns]]
    for r in records:
        rows.append([_cell(c, r.get(c), report.metric) for c in columns])
    return rows


def _cell(column: str, value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    if column in ("iteration", "steps"):
        return str(int(value))
    if column == "val":
        return _format_metric(value, metric)
    return f"{value:.3g}" if column != "sparsity" else f"{value:.4f}"


def layer_chart(report: RunReport, path: Path) -> Path | None:
    """Horizontal bars: each layer's sparsity in the chosen model (None when nothing chosen)."""
    chosen = report.chosen
    if chosen is None or not chosen.layers:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    layers = chosen.layers
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.32 * len(layers)))
    names = [f"{r.name} ({r.kind}, {r.numel:,})" for r in layers]
    import numpy as np

    y = np.arange(len(layers))
    ax.barh(y - 0.2, [r.sparsity for r in layers], 0.4, color="tab:blue", label="zeros (masked)")
    removed = [r.removed for r in layers]
    if any(v is not None for v in removed):
        ax.barh(
            y + 0.2,
            [v or 0.0 for v in removed],
            0.4,
            color="tab:orange",
            label="removed by thinning (deployable model)",
        )
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of the layer's parameters")
    fig.suptitle("Per-layer sparsity of the chosen model")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def final_line(report: RunReport) -> str:
    """The contenders' side-by-side speedups, fastest first (empty without a comparison)."""
    rows = sorted(report.final_comparison or (), key=lambda r: -r["objective_value"])
    readings = ", ".join(
        f"sparsity {r['sparsity']:.4f} {r['objective_value']:.2f}x "
        f"(IQR {r.get('objective_spread', 0.0):.2f})"
        for r in rows
    )
    return f"Contenders timed side by side: {readings}" if rows else ""


def _headline(report: RunReport) -> str:
    chosen, metric, runs = report.chosen, report.metric, len(report.trials)
    if report.kind == "compress":
        return f"One compression at sparsity {chosen.target_sparsity:.4f}" if chosen else "No model"
    if chosen:
        return (
            f"Chosen sparsity {chosen.target_sparsity:.4f} after {runs} compression runs "
            f"(budget {report.config['search']['budget']}): {metric} "
            f"{_format_metric(chosen.validation, metric)} (baseline "
            f"{_format_metric(report.baseline.validation, metric)}, threshold "
            f"{_format_metric(report.threshold, metric)}), {chosen.file_ratio:.2f}x smaller file, "
            f"{chosen.speedup:.2f}x measured throughput."
            + (f" Why not another: {report.answer_note}." if report.answer_note else "")
            + (f" Caution: {report.caution}." if report.caution else "")
            + (f" {final_line(report)}." if report.final_comparison else "")
        )
    closest = report.closest
    return (
        f"No feasible compression was found in {runs} runs: no trial met {metric} threshold "
        f"{_format_metric(report.threshold, metric)}. Closest: "
        + (
            f"sparsity {_point(closest.sparsity)} with {metric} "
            f"{_format_metric(closest.accuracy, metric)}."
            if closest is not None
            else "none (every trial failed)."
        )
    )


def _settings(report: RunReport) -> list[str]:
    c = report.config
    lines = [
        f"model: {c['model']['name']} {c['model']['kwargs'] or ''}".rstrip(),
        f"data: {c['data']['name']}; constraint checked on the {report.validation_source}",
        f"method: {c['method']['name']} {c['method']['options'] or ''}".rstrip(),
        f"objective: {c['objective']['name']}",
        f"ran on: {report.world_size} process(es), device {report.device}",
        f"wall time: {report.wall_s:.1f}s"
        + (
            f" (this invocation; trials took {report.trials_wall_s:.1f}s in all)"
            if report.trials_wall_s is not None
            else ""
        ),
    ]
    if report.s_acc is not None:
        spread = report.s_acc_std or 0.0
        lines.append(
            f"estimated s_acc (largest feasible sparsity): {report.s_acc:.4f} ± {spread:.4f}"
        )
    if report.reason:
        lines.append(f"search stopped: {report.reason}")
    return lines


def _md_table(rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def _html_table(rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}
pre{background:#f6f6f6;padding:1rem}
"""


def write_report(run_dir: str | Path | RunDir) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for a finished run; returns their paths.

    Pass the :class:`RunDir` itself when the caller already holds its lock.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    report = RunReport.from_dict(run.read_summary())
    # only the run's own figure files are embedded, whatever summary.json names, and only
    # when they resolve inside the run directory (a symlink out of it is never followed)
    search_png = run.owned("figures/search.png")
    figures = {"search": search_png} if search_png and "search" in report.figures else {}
    layers_png = run.owned("figures/layers.png", follow=False)
    chart = layer_chart(report, layers_png) if layers_png is not None else None
    if chart is not None:
        run.track(chart)
        figures["layers"] = chart
    scheme_file = run.owned("best/scheme.toml")
    scheme = (
        scheme_file.read_text(encoding="utf-8")
        if scheme_file is not None and scheme_file.is_file()
        else None
    )
    title = f"Condensa report: {report.config.get('name') or run.path.name}"
    headline, settings = _headline(report), _settings(report)
    sections = _sections(report, figures, scheme)
    md = [f"# {title}", "", headline, "", *[f"- {s}" for s in settings]]
    for heading, kind, content in sections:
        md += ["", f"## {heading}", ""]
        if kind == "table":
            md.append(_md_table(content))
        elif kind == "image":
            md.append(f"![{heading}]({content.relative_to(run.path)})")
        else:
            md += ["```toml", content.rstrip(), "```"]
    write_text(run.report_md, "\n".join(md) + "\n")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(headline)}</p>",
        "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in settings) + "</ul>",
    ]
    for heading, kind, content in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if kind == "table":
            parts.append(_html_table(content))
        elif kind == "image":
            parts.append(_image(content))
        else:
            parts.append(f"<pre>{html.escape(content)}</pre>")
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style>'
    body = "".join(parts)
    page = f'<!DOCTYPE html><html lang="en"><head>{head}</head><body>{body}</body></html>\n'
    write_text(run.report_html, page)
    return run.report_md, run.report_html


def _sections(
    report: RunReport, figures: Mapping[str, Path], scheme: str | None
) -> list[tuple[str, str, Any]]:
    """The report's sections once, for both renderings: ``(heading, kind, content)``.

    ``kind`` is ``"table"`` (rows), ``"image"`` (a figure path) or ``"code"`` (TOML).
    """
    sections: list[tuple[str, str, Any]] = [
        ("Baseline and chosen model", "table", comparison_rows(report))
    ]
    trials = trial_rows(report)
    if len(trials) > 1:
        sections.append(("Trials", "table", trials))
    recovery = recovery_rows(report)
    if recovery:
        sections.append(("Recovery of the chosen model", "table", recovery))
    for name, caption in (("search", "Search"), ("layers", "Per-layer sparsity")):
        if name in figures and figures[name].is_file():
            sections.append((caption, "image", figures[name]))
    if scheme:
        sections.append(("Scheme (as applied to the chosen model)", "code", scheme))
    return sections
