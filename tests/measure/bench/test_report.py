"""The report of the small run: charts, report.md, and an HTML file a browser renders whole."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from poollab.measure.bench.report import write_report
from tests.measure.bench.conftest import SmallRun

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
# the pools' colours in the charts (poollab.measure.charts.POOL_COLORS)
PREFORK_RED = (214, 39, 40)
THREADS_BLUE = (31, 119, 180)


@pytest.fixture(scope="module")
def report_dir(small_run: SmallRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(small_run.results, out)
    return out


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_the_charts_are_pngs_and_the_markdown_names_them(report_dir: Path) -> None:
    charts = sorted(report_dir.glob("report-*.png"))
    names = {p.name for p in charts}
    assert {"report-throughput.png", "report-scaling.png", "report-latency.png",
            "report-memory.png", "report-efficiency.png",
            "report-cpu-split.png"} <= names  # fmt: skip
    for chart in charts:
        assert chart.read_bytes().startswith(PNG_MAGIC)
    markdown = (report_dir / "report.md").read_text()
    for chart in charts:
        assert f"]({chart.name})" in markdown
    assert "## Verdict" in markdown and "### Recommendation" in markdown
    assert re.search(r"For CPU jobs .* was fastest: [\d,.]+ jobs/s", markdown)
    assert "Against solo" in markdown


def test_the_html_report_stands_alone(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text()
    charts = list(report_dir.glob("report-*.png"))
    assert html.count('<img src="data:image/png;base64,') == len(charts)
    # nothing fetched from elsewhere: no file or network references at all
    assert not re.search(r'(src|href)="(?!data:)', html)


def test_the_html_report_renders_its_charts_in_headless_chromium(
    report_dir: Path, tmp_path: Path
) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium)")
    url = (report_dir / "report.html").as_uri()
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [browser, *flags, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None
    total = re.search(r'data-charts-total="(\d+)"', body.group(0))
    loaded = re.search(r'data-charts-loaded="(\d+)"', body.group(0))
    charts = len(list(report_dir.glob("report-*.png")))
    assert total and loaded, body.group(0)
    assert int(total.group(1)) == int(loaded.group(1)) == charts
    # the page itself logged no error (chromium's own D-Bus noise aside)
    assert "Uncaught" not in dom.stderr and "Failed to load resource" not in dom.stderr

    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1280,3000", f"--screenshot={shot}", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = (image.imread(shot)[..., :3] * 255).astype(int)
    for colour in (PREFORK_RED, THREADS_BLUE):
        near = np.all(np.abs(pixels - np.array(colour)) <= 12, axis=-1).sum()
        # bars of that pool's colour are on screen: the charts were drawn, not just text
        assert near > 2000, (colour, near)
