"""The report of a run: PNG charts, report.md and a self-contained report.html."""

from __future__ import annotations

from pathlib import Path

from poollab.measure.bench.report.charts import draw_charts
from poollab.measure.bench.report.content import build_document
from poollab.measure.bench.report.document import render_html, render_markdown
from poollab.measure.bench.results import BenchRun


def write_report(run: BenchRun, out: Path) -> list[Path]:
    """Write the charts, report.md and report.html into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    charts = draw_charts(run, out)
    document = build_document(run, charts)
    md_path = out / "report.md"
    md_path.write_text(render_markdown(document))
    html_path = out / "report.html"
    html_path.write_text(render_html(document, base=out))
    return [md_path, html_path, *(out / chart.file for chart in charts)]
