"""The peers' virtualenv: ``.venv-peers`` with exactly the ``peers`` extra's pins.

arq needs redis<6 and kombu needs redis>=6.4, so the peers never share the project's venv.
The pins are read from pyproject.toml with tomllib; the project itself is not installed
there, only aiohttp at the project's own pin, which the peers' I/O job uses as the
consumer does (the peer modules run from the source tree via PYTHONPATH).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
VENV = REPO / ".venv-peers"


def pins(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    peers: list[str] = list(project["optional-dependencies"]["peers"])
    names = {_name(pin) for pin in peers}
    # the peers' I/O job uses the same HTTP client as the consumer, at the project's pin
    extra = [
        pin for pin in project["dependencies"] if _name(pin) == "aiohttp" and "aiohttp" not in names
    ]
    return peers + extra


def _name(pin: str) -> str:
    for sep in ("==", ">=", "<=", "~=", "<", ">", "[", ";", " "):
        pin = pin.split(sep, 1)[0]
    return pin.strip().lower()


def python() -> Path:
    return VENV / "bin" / "python"


def ensure() -> Path:
    """Create the venv and install the pins if anything is missing; return its python."""
    wanted = pins()
    if python().exists() and _installed(wanted):
        return python()
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run(
        [str(python()), "-m", "pip", "install", "--quiet", *wanted], check=True, timeout=900
    )
    return python()


def _installed(wanted: list[str]) -> bool:
    check = subprocess.run(
        [str(python()), "-m", "pip", "freeze"], capture_output=True, text=True, timeout=120
    )
    have = {line.strip().lower() for line in check.stdout.splitlines()}
    return all(pin.lower() in have for pin in wanted)
