from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from poollab.cli import main

from .test_cli import POOLLAB


def test_a_free_threaded_version_is_refused_with_where_to_get_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["interpreters", "get", "3.14t"]) == 2
    err = capsys.readouterr().err
    assert "no Debian release packages a free-threaded build" in err
    assert "uv python install 3.14t" in err


def test_an_unknown_version_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["interpreters", "get", "3.9"]) == 2
    assert "unknown version '3.9'; choose from: 3.14" in capsys.readouterr().err


def test_get_prints_the_cached_interpreter_without_building(tmp_path: Path) -> None:
    root = tmp_path / "forky-py314"
    root.mkdir()
    (root / ".poollab-root.json").write_text(json.dumps({"version": "3.14.8"}))
    done = _poollab(tmp_path, "interpreters", "get", "3.14")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(root / "usr/bin/python3.14")
    assert "cached already" in done.stderr


def test_list_says_what_each_demo_lacks(tmp_path: Path) -> None:
    if sys.version_info >= (3, 14):
        pytest.skip("this interpreter serves the sub-interpreter demo itself")
    done = _poollab(tmp_path, "interpreters", "list", "--json")
    assert done.returncode == 0, done.stderr
    by_demo = {entry["demo"]: entry for entry in json.loads(done.stdout)}
    assert set(by_demo) == {"subinterpreters", "free-threading"}
    assert "path" not in by_demo["subinterpreters"]
    assert "poollab interpreters get 3.14" in by_demo["subinterpreters"]["how"]


def _poollab(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POOLLAB_CACHE_DIR": str(cache)}
    return subprocess.run(
        [*POOLLAB, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )
