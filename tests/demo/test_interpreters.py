from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from poollab.demo import interpreters
from poollab.demo.interpreters import AUTO, ROOT_MARKER, Interpreter
from poollab.demo.subproc import ChildError


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("POOLLAB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POOLLAB_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert interpreters.forky_root() == Path("/x/cache/poollab/forky-py314")
    monkeypatch.setenv("POOLLAB_CACHE_DIR", "/y")
    assert interpreters.forky_root() == Path("/y/forky-py314")


def test_from_path_refuses_what_is_no_interpreter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--python /no/such/python: no such file"):
        interpreters.from_path("/no/such/python")
    with pytest.raises(ValueError, match="a directory"):
        interpreters.from_path(str(tmp_path))
    plain = tmp_path / "python"
    plain.write_text("")
    with pytest.raises(ValueError, match="not executable"):
        interpreters.from_path(str(plain))


def test_an_interpreter_inside_a_built_root_runs_chrooted(tmp_path: Path) -> None:
    (tmp_path / ROOT_MARKER).write_text("{}")
    python = tmp_path / "usr/bin/python3.14"
    python.parent.mkdir(parents=True)
    python.write_text("")
    found = interpreters.from_path(str(python))
    assert found.root == tmp_path and found.inner == "/usr/bin/python3.14"
    assert found.label().endswith(f"{tmp_path} /usr/bin/python3.14")
    assert found.launcher()[0] == ("chroot" if os.geteuid() == 0 else "unshare")


def test_a_command_on_path_is_found() -> None:
    found = interpreters.from_path(Path(sys.executable).name)
    assert found.root is None and found.path.name == Path(sys.executable).name


def test_without_any_interpreter_each_demo_says_what_to_get(empty_cache: Path) -> None:
    if sys.version_info >= (3, 14):
        pytest.skip("this interpreter has sub-interpreter pools itself")
    chosen, missing = interpreters.for_subinterpreters(AUTO)
    assert chosen is None
    assert "`poollab interpreters get 3.14`" in missing and str(empty_cache) in missing
    if shutil.which("python3.14t") or shutil.which("python3.13t"):
        pytest.skip("a free-threaded python is on PATH")
    chosen, missing = interpreters.for_free_threading(AUTO)
    assert chosen is None
    assert "uv python install 3.14t" in missing and "python.org" in missing


def test_a_free_threaded_python_on_path_is_picked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "python3.14t").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(tmp_path))
    chosen, how = interpreters.for_free_threading(AUTO)
    assert chosen == Interpreter(tmp_path / "python3.14t") and how == "python3.14t on PATH"


def test_a_given_python_wins(empty_cache: Path) -> None:
    chosen, how = interpreters.for_subinterpreters(sys.executable)
    assert chosen == Interpreter(Path(sys.executable)) and how == "given with --python"


def test_describe_runs_the_child_for_real() -> None:
    described = Interpreter(Path(sys.executable)).describe()
    assert interpreters.build_of(described).startswith(f"CPython {sys.version.split()[0]}, GIL")


def test_a_child_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ChildError, match="cannot start"):
        Interpreter(tmp_path / "gone").describe()


def test_build_of_names_the_gil_state() -> None:
    described = {"implementation": "CPython", "version": "3.14.0", "gil_disabled_build": True}
    assert interpreters.build_of({**described, "gil_enabled": False}).endswith("GIL off")
    assert interpreters.build_of({**described, "gil_enabled": True}).endswith("GIL on")


def test_the_cached_314_answers_from_its_root() -> None:
    cached = interpreters.cached_314()
    if cached is None:
        pytest.skip(
            f"no CPython 3.14 cached in {interpreters.forky_root()}: run "
            "`poollab interpreters get 3.14` (root, debootstrap)"
        )
    described = cached.describe()
    assert described["version"].startswith("3.14.")
    assert described["interpreter_pool"] is True
    # the child ran as the root's own python, not the host's
    assert described["executable"] == "/usr/bin/python3.14"
