"""Do the HTML reports render? Headless Chromium screenshots of `condensa report` pages.

For each report.html: Chromium (Debian package `chromium`) loads the file with network
access disabled and takes a full-page screenshot. Checked: the page loads, every image
is embedded (data: URIs that decode to PNG files), the screenshot is not blank, and it
holds coloured pixels — the plots (text and tables are black and grey; a missing image
shows none).

    python benchmarks/report_render.py runs/demo/memory runs/demo/throughput

Writes benchmarks/results/report_render.json and a section of docs/benchmarks.md; the
screenshots go to benchmarks/results/report_render/ (looked at by a person).
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

from _report import RESULTS, markdown_table, update_docs, write_results

PNG = b"\x89PNG\r\n\x1a\n"


def _screenshot(chromium: str, page: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--proxy-server=127.0.0.1:9",  # nothing may be fetched: the page is self-contained
            "--window-size=1100,4000",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def check(chromium: str, run_dir: Path) -> dict[str, object]:
    """Render ``run_dir/report.html`` and measure the screenshot."""
    import matplotlib.image

    page = run_dir / "report.html"
    text = page.read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]*src="([^"]+)"', text)
    embedded = [s for s in sources if s.startswith("data:image/png;base64,")]
    decoded = sum(base64.b64decode(s.split(",", 1)[1])[:8] == PNG for s in embedded)
    shot = RESULTS / "report_render" / f"{run_dir.name}.png"
    _screenshot(chromium, page, shot)
    pixels = matplotlib.image.imread(shot)[..., :3]  # floats in [0, 1]
    non_white = float((pixels.min(axis=2) < 0.9).mean())
    coloured = float((pixels.max(axis=2) - pixels.min(axis=2) > 0.25).mean())
    ok = (
        len(sources) == len(embedded) == decoded
        and decoded >= 1
        and non_white > 0.01
        and coloured > 0.001
    )
    return {
        "report": str(page),
        "images": len(sources),
        "embedded_png": decoded,
        "screenshot": str(shot.relative_to(RESULTS.parent.parent)),
        "non_white_fraction": round(non_white, 4),
        "coloured_fraction": round(coloured, 4),
        "renders": ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories with report.html")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed: apt-get install -y chromium", file=sys.stderr)
        return 2
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout
    rows = [check(chromium, run) for run in args.runs]
    write_results("report_render", {"chromium": version.strip(), "reports": rows})
    table = markdown_table(
        ["report", "images (all embedded PNG)", "non-white pixels", "coloured pixels", "renders"],
        [
            [
                r["report"],
                f"{r['embedded_png']}/{r['images']}",
                f"{r['non_white_fraction']:.1%}",
                f"{r['coloured_fraction']:.2%}",
                "yes" if r["renders"] else "**no**",
            ]
            for r in rows
        ],
    )
    update_docs(
        "report_render",
        "Reports render in headless Chromium",
        f"`python benchmarks/report_render.py RUN_DIR...` ({version.strip()}, network disabled): "
        "full-page screenshots of each `report.html`; *coloured pixels* come from the plots "
        "(text and tables are grey), so a page whose images failed to load has none. "
        "Screenshots: `benchmarks/results/report_render/`.\n\n" + table,
    )
    for r in rows:
        print(r)
    return 0 if all(r["renders"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
