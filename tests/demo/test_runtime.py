from __future__ import annotations

import platform
import sys

from poollab.demo.runtime import free_threading_missing, subinterpreters_missing, this_python


def test_this_python_names_version_and_build() -> None:
    assert platform.python_version() in this_python()


def test_free_threading_check_matches_the_interpreter() -> None:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    missing = free_threading_missing()
    if is_enabled is None or is_enabled():
        assert missing is not None and missing.startswith("skipped: ")
    else:
        assert missing is None


def test_subinterpreters_check_matches_the_interpreter() -> None:
    missing = subinterpreters_missing()
    if sys.version_info < (3, 13):
        assert missing is not None and "3.13" in missing
