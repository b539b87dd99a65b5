"""Where the committed runs and the docs generated from them live."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RESULTS = Path("docs/results")
# the docs whose marker blocks are generated, relative to the repository's root
DOCS: tuple[Path, ...] = (Path("BENCHMARKS.md"), Path("docs/TALK.md"), Path("docs/faults.md"))
