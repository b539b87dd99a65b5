"""What this interpreter supports: a GIL that can be off, and sub-interpreters with their own.

Each check returns None when the feature is usable, or the "skipped: ..." status to show.
"""

from __future__ import annotations

import importlib
import platform
import sys
import sysconfig
from types import ModuleType


def this_python() -> str:
    build = "free-threaded build" if sysconfig.get_config_var("Py_GIL_DISABLED") else "GIL build"
    return f"{platform.python_implementation()} {platform.python_version()}, {build}"


def free_threading_missing() -> str | None:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    if not sysconfig.get_config_var("Py_GIL_DISABLED") or is_enabled is None:
        return (
            "skipped: needs Python 3.13t or newer, a free-threaded build "
            f"(python3.13t / python3.14t); this is {this_python()}"
        )
    if is_enabled():
        return (
            "skipped: this free-threaded build runs with the GIL on (PYTHON_GIL=1, -X gil=1, "
            "or an extension module that re-enabled it)"
        )
    return None


# newest first: the public module of 3.14, then the private one of 3.13
INTERPRETER_MODULES = ("concurrent.interpreters", "_interpreters")


def interpreters_module() -> ModuleType | None:
    for name in INTERPRETER_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def subinterpreters_missing() -> str | None:
    if interpreters_module() is not None:
        return None
    return (
        "skipped: needs Python 3.13+ (_interpreters) or 3.14+ (concurrent.interpreters) "
        f"for sub-interpreters with their own GIL; this is {this_python()}"
    )
