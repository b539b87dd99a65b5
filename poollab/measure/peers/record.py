"""The peer comparison's committed summary: its tables, the versions it ran, the machine's load.

Written by ``python -m poollab.measure.peers --summary PATH`` (docs/results/peers/peers.json),
rendered into BENCHMARKS.md by ``python -m poollab.measure.claims render``.
"""

from __future__ import annotations

import importlib.metadata
import json
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from poollab.demo.result import Row
from poollab.measure.claims import summary

if TYPE_CHECKING:
    from poollab.measure.peers.cli import Case

# what each side ran: the project's venv for Celery and the consumer, the peers' for the rest
MAIN_PACKAGES = ("celery", "kombu", "redis", "gevent", "uvloop", "aiohttp", "celery-aio-pool")
PEER_PACKAGES = ("arq", "taskiq", "taskiq-redis", "redis")
COLUMNS = (
    ("noop drain /s", "noop", "drain", "rate"),
    ("noop drain, steady /s", "noop", "drain", "rate_steady"),
    ("noop e2e /s", "noop", "e2e", "rate"),
    ("io drain /s", "io", "drain", "rate"),
    ("io drain, steady /s", "io", "drain", "rate_steady"),
    ("io e2e /s", "io", "e2e", "rate"),
    ("CPU ms/job, noop e2e", "noop", "e2e", "cpu_ms_per_job"),
    ("CPU ms/job, io e2e", "io", "e2e", "cpu_ms_per_job"),
)
PEERS = ("celery-aio-pool", "taskiq", "arq", "celery-gevent", "bare-loop")


def versions(peers_python: Path | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in MAIN_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    if peers_python is not None and peers_python.exists():
        script = (
            "import importlib.metadata as m, json; "
            f"print(json.dumps({{n: m.version(n) for n in {list(PEER_PACKAGES)!r}}}))"
        )
        out = subprocess.run(
            [str(peers_python), "-c", script], capture_output=True, text=True, timeout=60
        )
        if out.returncode == 0:
            peer = json.loads(out.stdout)
            found.update({f"{k} (peers' venv)" if k == "redis" else k: v for k, v in peer.items()})
    return found


def rates_table(best: dict[tuple[str, str, str], Case], systems: list[str]) -> summary.Table:
    rows: list[Row] = []
    for system in systems:
        row: Row = {"system": system}
        for title, kind, mode, field in COLUMNS:
            case = best.get((system, kind, mode))
            if case is None:
                row[title] = None
                continue
            value = float(getattr(case, field))
            # a case cut short by its time-out is a rate over what it completed: marked
            figure = f"{value:,.0f}" if field != "cpu_ms_per_job" else f"{value:.2f}"
            row[title] = figure + (" *" if case.note else "")
        rows.append(row)
    columns = ["system", *(title for title, *_ in COLUMNS)]
    return summary.Table("lower median of the runs, jobs/s", columns, rows)


def ratios_table(best: dict[tuple[str, str, str], Case]) -> summary.Table:
    rows: list[Row] = []
    for kind in ("noop", "io"):
        for mode in ("drain", "e2e"):
            ours = [
                c for k, c in best.items() if k[1:] == (kind, mode) and k[0].startswith("consumer-")
            ]
            if not ours:
                continue
            top = max(ours, key=lambda c: c.rate)
            row: Row = {"mode": f"{kind} {mode} ({top.system} {top.rate:,.0f}/s)"}
            for peer in PEERS:
                other = best.get((peer, kind, mode))
                row[peer] = f"{top.rate / other.rate:.2f}×" if other and other.rate > 0 else None
            rows.append(row)
    title = "the consumer (its better loop) over each peer, same run"
    return summary.Table(title, ["mode", *PEERS], rows)


def write(
    path: Path,
    argv: list[str],
    cases: list[Case],
    systems: list[str],
    busy_cores: float,
    peers_python: Path | None,
    workers: dict[str, list[str]],
) -> None:
    from poollab.measure.peers.cli import medians

    best = medians(cases)
    command = shlex.join(["python", "-m", "poollab.measure.peers", *argv])
    record = summary.new("peers", command, busy_cores)
    record.tables = [rates_table(best, systems), ratios_table(best)]
    record.notes = [f"\\* {c.system} {c.kind} {c.mode}: {c.note}" for c in cases if c.note]
    commands: list[Row] = [
        {"system": name, "command": f"`{shlex.join(argv)}`"} for name, argv in workers.items()
    ]
    title = "worker commands (programs named without their venv's path)"
    record.tables.append(summary.Table(title, ["system", "command"], commands))
    record.figures = {f"{k[0]} {k[1]} {k[2]}": round(c.rate) for k, c in sorted(best.items())}
    record.versions = versions(peers_python)
    summary.write(record, path)
