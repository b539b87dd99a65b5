"""The lab's cost per job: noop jobs/s through the lab's tasks against bare Celery.

For each pool, a worker of each app runs on the same Redis with the same settings; the
queue is filled while the worker's consumer is cancelled, then the consumer is added back
and the drain is timed until the last job finished (stamped by the worker). Apps
alternate, repeated, and the best of each is compared. Also measures the upstream's
ceiling at 1,000 concurrent connections.

Usage: ``python -m poollab.measure.overhead [--jobs 3000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from celery import Celery
from rich.console import Console
from rich.table import Table

from poollab import jobs
from poollab.celery_config import make_client
from poollab.demo.background import BackgroundLoad
from poollab.demo.result import Row
from poollab.launcher.health import celery_ping
from poollab.launcher.lab import resolve_command
from poollab.launcher.redis_server import RedisServer, free_port
from poollab.measure.claims import summary
from poollab.measure.collect import collect
from poollab.settings import CELERY_POOLS, Settings

console = Console()
ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = {"prefork": 2, "threads": 16, "gevent": 100, "solo": 1}
APPS = {
    "lab": ("poollab.worker.app", "poollab.noop"),
    "bare": ("poollab.measure.bare_celery", "bare.noop"),
}


def start_worker(module: str, pool: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    argv = (
        "celery", "-A", module, "worker", "-P", pool, "-c", str(CONCURRENCY[pool]),
        "-Q", pool, "-n", f"{pool}@%h", "--loglevel", "WARNING", "-E",
    )  # fmt: skip
    env = {**os.environ, "POOLLAB_BROKER_URL": settings.broker_url, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            resolve_command(argv), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    node = f"{pool}@{socket.gethostname()}"
    deadline = time.monotonic() + 60
    while not celery_ping(settings, node):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {module} -P {pool} did not start; see {log}")
        time.sleep(0.2)
    return process


def drain_rate(client: Celery, task: str, pool: str, count: int) -> float:
    node = f"{pool}@{socket.gethostname()}"
    client.control.cancel_consumer(pool, destination=[node], reply=True)
    ids = []
    with client.producer_or_acquire() as producer:
        for _ in range(count):
            result = client.send_task(
                task,
                kwargs={"x": 1},
                queue=pool,
                headers={jobs.SENT_HEADER: time.time()},
                producer=producer,
            )
            ids.append(result.id)
    started = time.time()
    client.control.add_consumer(pool, destination=[node], reply=True)
    # the workers stamp when each job finished, so polling slowly costs no precision and
    # leaves the CPU to the worker being measured
    collected = collect(client.backend.client, ids, 300, interval_s=0.5)
    if collected.pending:
        raise RuntimeError(f"{len(collected.pending)} of {count} jobs not finished within 300 s")
    finished: list[float] = []
    for meta in collected.metas.values():
        assert meta["status"] == "SUCCESS", meta
        result = meta["result"]
        finished.append(result["timings"]["finished"] if isinstance(result, dict) else result)
    return count / (max(finished) - started)


async def upstream_ceiling(url: str, connections: int, rounds: int, ms: int) -> float:
    """Requests/s the upstream serves with ``connections`` requests always in flight."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_client() -> int:
            for _ in range(rounds):
                async with session.get(f"{url}/delay?ms={ms}") as response:
                    assert response.status == 200
                    await response.read()
            return rounds

        started = time.perf_counter()
        done = sum(await asyncio.gather(*(one_client() for _ in range(connections))))
        return done / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pools", default=",".join(CELERY_POOLS))
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/poollab-overhead"))
    parser.add_argument(
        "--summary", type=Path, help="also write the docs' summary (docs/results/overhead/...)"
    )
    args = parser.parse_args()
    with BackgroundLoad() as load:
        rows, ceiling_0, ceiling_50 = _measure(args)
    _print(args, rows, ceiling_0, ceiling_50)
    if args.summary:
        _write_summary(args, rows, (ceiling_0, ceiling_50), load.other_cores)
    return 0


def _measure(
    args: argparse.Namespace,
) -> tuple[list[tuple[str, float, float, float]], float, float]:
    args.log_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with RedisServer() as server:
        settings = Settings(broker_url=server.url + "/0")
        client = make_client("overhead", settings)
        for pool in args.pools.split(","):
            best = {"lab": 0.0, "bare": 0.0}
            for round_ in range(args.repeat):
                order = ["lab", "bare"] if round_ % 2 == 0 else ["bare", "lab"]
                for name in order:
                    module, task = APPS[name]
                    worker = start_worker(
                        module, pool, settings, args.log_dir / f"{pool}-{name}.log"
                    )
                    try:
                        drain_rate(client, task, pool, min(200, args.jobs))  # warm-up
                        rate = drain_rate(client, task, pool, args.jobs)
                    finally:
                        worker.terminate()
                        worker.wait(60)
                    best[name] = max(best[name], rate)
                    console.print(f"{pool:8} {name:4} round {round_ + 1}: {rate:8.1f} jobs/s")
            overhead = 1 - best["lab"] / best["bare"]
            rows.append((pool, best["lab"], best["bare"], overhead))

        upstream_port = free_port()
        upstream = subprocess.Popen(
            resolve_command(("poollab", "serve", "upstream", "--port", str(upstream_port))),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(2)
            url = f"http://127.0.0.1:{upstream_port}"
            ceiling_0 = asyncio.run(upstream_ceiling(url, 1000, 5, 0))
            ceiling_50 = asyncio.run(upstream_ceiling(url, 1000, 5, 50))
        finally:
            upstream.terminate()
            upstream.wait(30)
    return rows, ceiling_0, ceiling_50


def _print(
    args: argparse.Namespace,
    rows: list[tuple[str, float, float, float]],
    ceiling_0: float,
    ceiling_50: float,
) -> None:
    table = Table(title=f"noop jobs/s, drain of {args.jobs} jobs, best of {args.repeat}")
    for column in ("pool", "-c", "lab", "bare Celery", "lab overhead"):
        table.add_column(column, justify="right")
    for pool, lab, bare, overhead in rows:
        table.add_row(
            pool, str(CONCURRENCY[pool]), f"{lab:,.0f}", f"{bare:,.0f}", f"{overhead:+.1%}"
        )
    console.print(table)
    console.print(
        f"upstream, 1,000 concurrent connections: {ceiling_0:,.0f} req/s at 0 ms, "
        f"{ceiling_50:,.0f} req/s at 50 ms (ideal {1000 / 0.05:,.0f})"
    )
    console.print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def _write_summary(
    args: argparse.Namespace,
    rows: list[tuple[str, float, float, float]],
    ceilings: tuple[float, float],
    busy_cores: float,
) -> None:
    command = shlex.join(["python", "-m", "poollab.measure.overhead", *sys.argv[1:]])
    record = summary.new("overhead", command, busy_cores)
    columns = ["pool", "-c", "lab jobs/s", "bare Celery jobs/s", "lab overhead"]
    table_rows: list[Row] = [
        {
            "pool": pool,
            "-c": CONCURRENCY[pool],
            "lab jobs/s": round(lab),
            "bare Celery jobs/s": round(bare),
            "lab overhead": f"{overhead:+.1%}",
        }
        for pool, lab, bare, overhead in rows
    ]
    title = f"noop jobs/s, drain of {args.jobs} jobs, best of {args.repeat}"
    record.tables.append(summary.Table(title, columns, table_rows))
    record.figures = {"upstream_req_per_s_0ms": round(ceilings[0])}
    record.figures["upstream_req_per_s_50ms"] = round(ceilings[1])
    record.notes.append(
        f"the upstream, 1,000 concurrent connections (aiohttp client): {ceilings[0]:,.0f} "
        f"req/s at 0 ms, {ceilings[1]:,.0f} req/s at 50 ms (ideal {1000 / 0.05:,.0f})"
    )
    summary.write(record, args.summary)


if __name__ == "__main__":
    sys.exit(main())
