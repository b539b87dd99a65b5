from __future__ import annotations

import itertools
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from poollab.demo import subinterpreters
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict
from poollab.demo.runtime import interpreters_module

from .conftest import assert_structure


def test_runs_or_says_what_it_needs(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("subinterpreters")
    assert_structure(result, "subinterpreters")
    if interpreters_module() is None:
        assert result.verdict is Verdict.SKIPPED
        assert "3.13" in str(result.rows[0]["status"])


def _private_module() -> types.ModuleType:
    """Stands in for 3.13's ``_interpreters``: ids, exec(id, code) -> None, destroy(id)."""
    module = types.ModuleType("_interpreters")
    ids = itertools.count(1)
    live: set[int] = set()

    def create() -> int:
        handle = next(ids)
        live.add(handle)
        return handle

    def exec_(handle: int, code: str) -> None:
        assert handle in live
        exec(code, {})

    module.create = create  # type: ignore[attr-defined]
    module.exec = exec_  # type: ignore[attr-defined]
    module.destroy = live.remove  # type: ignore[attr-defined]
    module.live = live  # type: ignore[attr-defined]
    return module


class _Interpreter:
    def __init__(self) -> None:
        self.closed = False
        self.ran: list[str] = []

    def exec(self, code: str) -> None:
        self.ran.append(code)

    def close(self) -> None:
        self.closed = True


def test_adapter_speaks_the_public_api() -> None:
    module = types.ModuleType("concurrent.interpreters")
    module.create = _Interpreter  # type: ignore[attr-defined]
    adapter = subinterpreters._Interpreters(module)
    handle = adapter.create()
    adapter.exec(handle, "x = 1")
    adapter.close(handle)
    assert isinstance(handle, _Interpreter) and handle.ran == ["x = 1"] and handle.closed


def test_code_sent_to_interpreters_compiles_and_runs() -> None:
    namespace: dict[str, object] = {}
    exec(subinterpreters._code(calls=2, size=10), namespace)
    assert "spin" in namespace


def test_measuring_path_with_the_private_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = _private_module()
    monkeypatch.setattr(subinterpreters, "subinterpreters_missing", lambda: None)
    monkeypatch.setattr(subinterpreters, "interpreters_module", lambda: fake)
    monkeypatch.setattr(subinterpreters.scaling, "spin_size", lambda ctx, full_serial_s: 2_000)
    result = subinterpreters.run(DemoContext(quick=True, out_dir=tmp_path))
    kinds = {(row["kind"], row["workers"]) for row in result.rows}
    assert kinds == {(k, w) for k in ("subinterpreters", "threads") for w in (1, 2, 4)}
    # judged by the rule (not by the runner, which alone can call a result inconclusive)
    assert result.verdict in (Verdict.HELD, Verdict.NOT_HELD)
    assert "interpreters" in result.reason and "faster than 1" in result.reason
    assert not fake.live, "every interpreter created must be destroyed"  # type: ignore[attr-defined]
