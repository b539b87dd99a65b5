"""The collector's raw data on disk: one directory per run, JSON lines of jobs and samples.

Rows are buffered in memory and appended once a second, so the collector does one write
per file per second whatever the job rate. Each file stops growing at ``max_rows`` (noted
in ``run.json``) so that a collector left running cannot fill the disk.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

MAX_ROWS = 2_000_000


def run_id(now: float | None = None) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now))


class RunStore:
    FILES = ("jobs", "samples")

    def __init__(self, root: Path, name: str | None = None, max_rows: int = MAX_ROWS) -> None:
        self.root = root
        self.max_rows = max_rows
        self.name = ""
        self.started = 0.0
        self._pending: dict[str, list[str]] = {}
        self.rows: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.start_run(name)

    @property
    def directory(self) -> Path:
        return self.root / self.name

    def start_run(self, name: str | None = None) -> str:
        """Flush the current run and start appending to a new directory."""
        if self.name:
            self.flush()
        base = name or run_id()
        candidate, suffix = base, 1
        while (self.root / candidate).exists():
            suffix += 1
            candidate = f"{base}-{suffix}"
        self.name = candidate
        self.started = time.time()
        self._pending = {kind: [] for kind in self.FILES}
        self.rows = dict.fromkeys(self.FILES, 0)
        self.dropped = dict.fromkeys(self.FILES, 0)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_info()
        return self.name

    def add(self, kind: str, row: dict[str, Any]) -> None:
        if self.rows[kind] + len(self._pending[kind]) >= self.max_rows:
            self.dropped[kind] += 1
            return
        self._pending[kind].append(json.dumps(row, separators=(",", ":")))

    def flush(self) -> None:
        for kind, lines in self._pending.items():
            if not lines:
                continue
            with (self.directory / f"{kind}.jsonl").open("a") as out:
                out.write("\n".join(lines) + "\n")
            self.rows[kind] += len(lines)
            self._pending[kind] = []
        self._write_info()

    def info(self) -> dict[str, Any]:
        return {
            "run": self.name,
            "directory": str(self.directory),
            "started": self.started,
            "rows": dict(self.rows),
            "dropped_over_cap": dict(self.dropped),
            "max_rows": self.max_rows,
        }

    def _write_info(self) -> None:
        (self.directory / "run.json").write_text(json.dumps(self.info(), indent=2) + "\n")

    def runs(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "run.json").exists())
