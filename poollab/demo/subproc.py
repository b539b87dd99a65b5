"""Run one of the demo's child scripts in a fresh interpreter and read its JSON answer.

Children run by file path with ``-P`` rather than ``-m poollab.demo...``: that way no package
``__init__`` runs before the child's first line, which matters for gevent (patch before any
other import) and for memory baselines (nothing but the child's own imports in the heap).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


class ChildError(RuntimeError):
    pass


def run_child(script: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run one of this package's child scripts in this interpreter."""
    command = [sys.executable, "-P", str(_HERE / script), *args]
    return run_command(command, f"{script} {' '.join(args)}".strip(), timeout)


def child_script(script: str) -> Path:
    return _HERE / script


def run_command(command: list[str], what: str, timeout: float) -> dict[str, Any]:
    """Run a child command and read the JSON document on the last line it prints; ``what``
    names the child in errors."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ChildError(f"{what} ran over {timeout:.0f} s") from exc
    except OSError as exc:
        raise ChildError(f"{what}: cannot start {command[0]}: {exc}") from exc
    if done.returncode != 0:
        raise ChildError(f"{what} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise ChildError(f"{what} printed nothing")
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer
