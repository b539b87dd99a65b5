"""A module of user jobs the lab has never seen, written into a test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest


def importable_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str, source: str
) -> str:
    """Write ``source`` as a module importable from the cwd, and return its name: one of its
    own per test, so that no test finds another's in sys.modules."""
    name = f"{prefix}_{tmp_path.name.replace('-', '_').lower()}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name
