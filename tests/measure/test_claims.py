"""The docs' generated blocks: rendered from docs/results/, checked, and kept to their markers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from poollab.demo.result import DemoResult, Section, Verdict
from poollab.measure.claims import blocks, cli, faults, render, run, summary, talk
from poollab.measure.claims.paths import DOCS, RESULTS, ROOT


def _copy_repo(tmp_path: Path) -> Path:
    for doc in DOCS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / doc, tmp_path / doc)
    shutil.copytree(ROOT / RESULTS, tmp_path / RESULTS)
    return tmp_path


def test_the_committed_docs_are_what_their_data_renders(tmp_path: Path) -> None:
    root = _copy_repo(tmp_path)
    assert cli.main(["--root", str(root), "render"]) == 0
    stale = [doc for doc in DOCS if (root / doc).read_text() != (ROOT / doc).read_text()]
    assert not stale, (
        f"{stale} differ from what docs/results/ renders: "
        "run python -m poollab.measure.claims render"
    )
    # every block's source is committed; the talk's summary lists every experiment's file
    sources = set()
    for doc in DOCS:
        found = blocks.blocks((ROOT / doc).read_text(), doc)
        assert all((ROOT / block.source).exists() for block in found), doc
        sources |= {block.source for block in found}
    assert RESULTS / "talk" in sources


def test_check_fails_with_a_diff_when_a_figure_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_repo(tmp_path)
    assert cli.main(["--root", str(root), "render", "--check"]) == 0
    path = root / RESULTS / "talk" / "sleep.json"
    document = json.loads(path.read_text())
    document["results"][0]["reason"] = "a reason nobody wrote"
    path.write_text(json.dumps(document))
    capsys.readouterr()
    assert cli.main(["--root", str(root), "render", "--check"]) == 1
    captured = capsys.readouterr()
    assert "+- verdict: **held** (a reason nobody wrote)" in captured.out
    assert "out of date: docs/TALK.md" in captured.err
    # --check wrote nothing; render then brings the doc up to date
    assert (root / "docs/TALK.md").read_text() == (ROOT / "docs/TALK.md").read_text()
    assert cli.main(["--root", str(root), "render"]) == 0
    assert cli.main(["--root", str(root), "render", "--check"]) == 0


def test_only_the_text_between_markers_is_rewritten() -> None:
    text = (
        "# Title\nhand-written 1.23x\n\n"
        "<!-- generated: a (from docs/results/a.json) -->\nold\n<!-- end generated -->\n"
        "after\n"
    )
    out = blocks.rewrite(text, Path("doc.md"), lambda block: f"new {block.name} {block.source}")
    assert out == (
        "# Title\nhand-written 1.23x\n\n"
        "<!-- generated: a (from docs/results/a.json) -->\nnew a docs/results/a.json\n"
        "<!-- end generated -->\nafter\n"
    )


def test_a_marker_without_its_end_is_an_error_naming_the_doc() -> None:
    text = "<!-- generated: a (from docs/results/a.json) -->\nno end\n"
    with pytest.raises(blocks.BlockError, match=r"doc\.md: 1 '<!-- generated:' markers but 0"):
        blocks.rewrite(text, Path("doc.md"), lambda block: "")


def test_a_source_outside_docs_results_is_refused(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- generated: x (from /etc/passwd) -->\n<!-- end generated -->\n")
    with pytest.raises(render.SourceError, match="not under docs/results/"):
        render.render(tmp_path, (Path("doc.md"),))
    doc.write_text("<!-- generated: x (from docs/results/none.json) -->\n<!-- end generated -->\n")
    with pytest.raises(render.SourceError, match="does not exist"):
        render.render(tmp_path, (Path("doc.md"),))


def _demo_file(directory: Path, name: str, verdict: Verdict) -> Path:
    result = DemoResult(
        name=name,
        claim="selectors scale (at least 2x)",
        talk="selectors scale",
        columns=["kind", "per_second"],
        rows=[{"kind": "a|b", "per_second": 1234.5}],
        sections=[Section("second table", ["x"], [{"x": 1}])],
        verdict=verdict,
        reason="1.5x < 2x",
        summary={"speedup": 1.5},
        background_cores=0.25,
    )
    document = {
        "command": f"poollab demo {name} --json --no-chart",
        "machine": {"python": "CPython 3.14.0", "gil": "enabled", "cpu_count": 4},
        "results": [result.to_json()],
        "recorded": "2026-12-05 01:00 UTC",
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def test_any_experiments_json_renders_its_tables_verdict_rule_and_command(tmp_path: Path) -> None:
    # an experiment this registry does not know, as another engineer would drop it in
    text = talk.render_experiment(_demo_file(tmp_path, "brand-new", Verdict.NOT_HELD))
    assert text.startswith(
        "`poollab demo brand-new --json --no-chart`, 2026-12-05 01:00 UTC, 4 cores, "
        "other programs kept 0.25 cores busy, CPython 3.14.0 (GIL enabled)"
    )
    assert "| a\\|b | 1,234 |" in text  # a pipe in a cell is escaped
    assert "*second table*" in text and "| 1 |" in text
    assert "- measured: speedup = 1.50" in text
    assert "- claim as tested: selectors scale (at least 2x)" in text
    assert "- verdict: **did not hold** (1.5x < 2x)" in text
    listing = talk.render_summary(tmp_path)
    assert "| `brand-new` | selectors scale (at least 2x) | selectors scale |" in listing


def test_a_summary_renders_its_command_tables_notes_and_versions() -> None:
    record = summary.new("peers", "python -m poollab.measure.peers --repeat 1", 0.5)
    record.recorded = "2026-12-05 01:00 UTC"
    record.cpu_count = 2
    record.tables = [summary.Table("rates", ["system", "rate"], [{"system": "x", "rate": 2000}])]
    record.notes = ["a note"]
    record.versions = {"taskiq": "0.12.6"}
    text = render.render_summary(summary.Summary.from_json(record.to_json()))
    assert text.splitlines()[0] == (
        "`python -m poollab.measure.peers --repeat 1`, 2026-12-05 01:00 UTC, 2 cores, "
        "other programs kept 0.50 cores busy:"
    )
    assert "*rates*" in text and "| x | 2,000 |" in text
    assert "- a note" in text and "Versions: taskiq 0.12.6." in text


def test_fault_outcomes_come_from_junit_xml() -> None:
    xml = (
        '<testsuites><testsuite><testcase classname="tests.faults.test_x" name="test_a" '
        'time="1.25"/><testcase classname="tests.faults.test_x" name="test_b" time="2">'
        "<failure/></testcase></testsuite></testsuites>"
    )
    assert faults.outcomes(xml) == [
        {"module": "test_x", "test": "test_a", "outcome": "passed", "seconds": 1.2},
        {"module": "test_x", "test": "test_b", "outcome": "failed", "seconds": 2.0},
    ]


def test_run_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "nonsense", "talk:nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown run 'nonsense', 'nope'" in err and "talk:executors" in err


def test_run_talk_writes_the_demos_json_and_render_takes_it(tmp_path: Path) -> None:
    root = _copy_repo(tmp_path)
    path = root / RESULTS / "talk" / "sleep.json"
    path.unlink()
    assert cli.main(["--root", str(root), "run", "talk:sleep", "--quick"]) == 0
    document = json.loads(path.read_text())
    assert document["command"] == "poollab demo sleep --quick --json --no-chart"
    assert document["recorded"].endswith(" UTC")
    (result,) = document["results"]
    assert result["name"] == "sleep" and result["quick"] is True
    assert result["background_cores"] is not None
    assert cli.main(["--root", str(root), "render"]) == 0
    assert "`poollab demo sleep --quick --json --no-chart`" in (root / "docs/TALK.md").read_text()


def test_a_skip_never_replaces_a_run_made_where_the_experiment_could_run(tmp_path: Path) -> None:
    path = _demo_file(tmp_path, "subinterpreters", Verdict.HELD)
    skip = {"results": [{"verdict": "skipped"}]}
    assert run.keeps_committed_run(path, skip)
    assert not run.keeps_committed_run(path, {"results": [{"verdict": "held"}]})
    assert not run.keeps_committed_run(tmp_path / "absent.json", skip)
    _demo_file(tmp_path, "subinterpreters", Verdict.SKIPPED)
    assert not run.keeps_committed_run(path, skip)


def test_run_all_goes_on_past_a_failed_measurement(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = []

    def broken(root: Path, quick: bool) -> None:
        raise subprocess.CalledProcessError(1, ["x"])

    def fine(root: Path, quick: bool) -> None:
        ran.append(quick)

    monkeypatch.setattr(run, "RUNNERS", {"first": broken, "second": fine})
    assert cli.main(["run", "all", "--quick"]) == 1
    assert ran == [True]
    assert "failed: first; their committed files are unchanged" in capsys.readouterr().err
