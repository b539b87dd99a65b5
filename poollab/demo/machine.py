"""A description of the machine the figures were measured on, printed with every run."""

from __future__ import annotations

import os
import platform
import sys

import psutil

from poollab.demo.result import Cell


def describe() -> dict[str, Cell]:
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gil": _gil_state(),
        "platform": platform.platform(terse=True),
        "cpu_count": os.cpu_count() or 1,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        **load(),
    }


def load() -> dict[str, Cell]:
    """Load averages: how busy the machine was with other work while figures were taken."""
    load1, load5, _ = os.getloadavg()
    return {"load_1m": round(load1, 2), "load_5m": round(load5, 2)}


def _gil_state() -> str:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_enabled is None:
        return "always on"
    return "enabled" if is_enabled() else "disabled"
