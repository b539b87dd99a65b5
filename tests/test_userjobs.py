"""The registry of the user's own jobs: specs, modules, POOLLAB_JOBS, running, JSON checks."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from poollab import userjobs
from poollab.settings import get_settings
from poollab.userjobs import UserJobError

MODULE = """
import json
from json import dumps

def add(a, b=1):
    return a + b

async def twice(x):
    return 2 * x

def _private():
    return None

CONSTANT = 3
"""


@pytest.fixture(autouse=True)
def _own_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # the registry appends the cwd to sys.path: each test's tmp dir is put back out
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != ""])


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module ``ujobs_<n>`` in a tmp dir that is the cwd (importable from there only)."""
    name = f"ujobs_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("a.b:c", ("a.b", "c")), ("m:f", ("m", "f")), (" m:f ", ("m", "f"))],
)
def test_parse_spec(spec: str, expected: tuple[str, str]) -> None:
    assert userjobs.parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["m", "m:", ":f", "m:f.g", "a..b:c", "m:1f", "a b:c"])
def test_parse_spec_refuses(spec: str) -> None:
    with pytest.raises(UserJobError, match="MODULE:FUNCTION"):
        userjobs.parse_spec(spec)


def test_load_spec_imports_from_the_cwd(user_module: str) -> None:
    job = userjobs.load_spec(f"{user_module}:add")
    assert (job.module, job.function, job.is_async) == (user_module, "add", False)
    assert job.task_name == f"poollab.user.{user_module}.add"
    assert job.fn(a=2) == 3
    assert userjobs.load_spec(f"{user_module}:twice").is_async


def test_load_spec_errors(user_module: str) -> None:
    with pytest.raises(UserJobError, match="cannot import 'no_such_module_xyz'"):
        userjobs.load_spec("no_such_module_xyz:f")
    with pytest.raises(UserJobError, match="has no 'missing'"):
        userjobs.load_spec(f"{user_module}:missing")
    with pytest.raises(UserJobError, match="is a int, not a callable"):
        userjobs.load_spec(f"{user_module}:CONSTANT")


def test_a_module_that_raises_on_import_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ujobs_broken.py").write_text("raise RuntimeError('no config')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserJobError, match="RuntimeError: no config"):
        userjobs.load_modules(["ujobs_broken"])


def test_load_modules_takes_public_functions_defined_there(user_module: str) -> None:
    loaded = userjobs.load_modules([user_module])
    # not _private, not the imported json.dumps, not the module json, not CONSTANT
    assert sorted(loaded) == [
        f"poollab.user.{user_module}.add",
        f"poollab.user.{user_module}.twice",
    ]
    assert sorted(userjobs.by_spec(loaded)) == [f"{user_module}:add", f"{user_module}:twice"]


def test_a_module_without_functions_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ujobs_empty.py").write_text("from os import getcwd\nX = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserJobError, match="defines no public function"):
        userjobs.load_modules(["ujobs_empty"])


def test_modules_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert userjobs.modules_from_env(" a.b, ,c,a.b,") == ["a.b", "c"]
    assert userjobs.modules_from_env("") == []
    monkeypatch.setenv("POOLLAB_JOBS", "x, y")
    get_settings.cache_clear()
    try:
        assert userjobs.modules_from_env() == ["x", "y"]
    finally:
        get_settings.cache_clear()


def test_run_blocking_sync_and_async(user_module: str) -> None:
    assert userjobs.run_blocking(userjobs.load_spec(f"{user_module}:add"), {"a": 1, "b": 5}) == 6
    assert userjobs.run_blocking(userjobs.load_spec(f"{user_module}:twice"), {"x": 4}) == 8


def test_check_json() -> None:
    value = {"a": [1, 2.5, None, "s"], "b": {"c": True}}
    assert userjobs.check_json(value) is value
    with pytest.raises(TypeError, match=r"^user job returned a bytes, which JSON cannot encode$"):
        userjobs.check_json(b"x")
    with pytest.raises(TypeError, match="returned a set"):
        userjobs.check_json({"nested": [{1, 2}]})
    with pytest.raises(TypeError, match="JSON cannot encode: keys must be"):
        userjobs.check_json({(1, 2): "tuple key"})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="JSON cannot encode: Circular reference"):
        userjobs.check_json(loop)


def test_rss_is_the_calling_process_own_after_a_fork() -> None:
    parent = userjobs.rss_kb()  # the parent's file is open from here on
    assert parent is not None and parent > 1000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child grows by 50 MB and reports its RSS before and after
        before = userjobs.rss_kb()
        held = b"\x01" * 50_000_000
        os.write(write, f"{before} {userjobs.rss_kb()}".encode())
        os._exit(0 if held else 1)
    os.close(write)
    before, after = (int(part) for part in os.read(read, 64).split())
    os.waitpid(pid, 0)
    os.close(read)
    # the parent's figure, which a read of the parent's file would give, did not grow
    assert after - before > 45_000, (before, after)
    now = userjobs.rss_kb()
    assert now is not None and now < parent + 10_000


def test_measured_call_and_its_envelope(user_module: str) -> None:
    outcome = userjobs.measured_call(userjobs.load_spec(f"{user_module}:add"), {"a": 1})
    assert outcome.value == 2
    result = userjobs.envelope(outcome, "solo", 1.0, 2.0)
    assert result["value"] == 2 and result["pool"] == "solo"
    assert result["timings"]["sent"] == 1.0 and result["timings"]["started"] == 2.0
    assert result["rss_kb"] == {"before": outcome.rss_before_kb, "after": outcome.rss_after_kb}
    assert outcome.rss_before_kb is not None and outcome.rss_before_kb > 1000
