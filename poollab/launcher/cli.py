"""``poollab up`` and ``poollab status``."""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from poollab.cli import CliError
from poollab.launcher.health import is_healthy
from poollab.launcher.lab import Lab, LabError, broker_for_local_lab
from poollab.launcher.topology import CONSUMER_GRACE_S, GRACE_S, Service, build_services
from poollab.settings import ALL_POOLS, PoolName, Settings, running_lab_state
from poollab.stopping import Stop, StopSignals

console = Console(stderr=True)


UP_DESCRIPTION = """\
Start upstream, producer, a worker per pool, the asyncio consumer and Flower as local
processes, on the Redis POOLLAB_BROKER_URL names, or else on an embedded Redis of its own
(never one it was not given). A service that exits is restarted, after a delay that doubles
with each quick exit (`poollab status` counts the restarts). Ctrl-C or SIGTERM stops them all,
at any moment, start-up included: each gets its grace period, then its process group is
killed. Should the launcher itself be killed, its services go with it.
"""


def add_parser(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up", help="start the whole lab as local processes", description=UP_DESCRIPTION
    )
    up.add_argument(
        "--pools", default=",".join(ALL_POOLS), help="comma-separated pools (default: all)"
    )
    up.add_argument("--no-flower", action="store_true", help="do not start Flower")
    up.add_argument("--run-dir", type=Path, default=Path(".poollab"), help="state and logs")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to become healthy")
    up.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds each service gets to stop before SIGKILL of its process group (default: "
        f"{CONSUMER_GRACE_S:.0f} for workers and the consumer, {GRACE_S:.0f} for the rest)",
    )
    up.set_defaults(func=run_up)

    status = subparsers.add_parser("status", help="show which lab services run")
    status.add_argument("--run-dir", type=Path, default=Path(".poollab"))
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=run_status)


def parse_pools(text: str) -> tuple[PoolName, ...]:
    pools = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in pools if p not in ALL_POOLS]
    if unknown or not pools:
        raise CliError(f"--pools: unknown pool {', '.join(unknown)}; choose from {ALL_POOLS}")
    return pools  # type: ignore[return-value]


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _launcher_alive(run_dir: Path) -> int | None:
    state = running_lab_state(run_dir / "state.json")
    return int(state["launcher_pid"]) if state is not None else None


def run_up(args: argparse.Namespace) -> int:
    pools = parse_pools(args.pools)
    if args.grace is not None and args.grace < 0:
        raise CliError("--grace: seconds, 0 or more")
    if (pid := _launcher_alive(args.run_dir)) is not None:
        raise CliError(f"the lab already runs (launcher pid {pid}); `poollab status` shows it")
    try:
        broker_url, embedded = broker_for_local_lab(dict(os.environ))
    except LabError as exc:
        raise CliError(str(exc)) from None
    env = {**os.environ, "POOLLAB_BROKER_URL": broker_url}
    settings = Settings(broker_url=broker_url)
    services = build_services(settings, socket.gethostname(), pools, with_flower=not args.no_flower)
    busy = [s for s in services if s.url and _port_in_use(int(s.url.rsplit(":", 1)[1]))]
    if busy:
        if embedded:
            embedded.stop()
        taken = ", ".join(f"{s.name} ({s.url})" for s in busy)
        raise CliError(f"port already in use: {taken}")
    lab = Lab(
        settings,
        env,
        args.run_dir,
        on_event=lambda m: console.print(f"[dim]{m}[/]"),
        grace_s=args.grace,
    )
    lab.redis = embedded
    with StopSignals() as stop_signals:
        try:
            if embedded:
                console.print(f"started an embedded Redis at {embedded.url}")
            try:
                lab.start(services, timeout_s=args.timeout)
            except LabError as exc:
                raise CliError(str(exc)) from None
            print_services(services, broker_url)
            console.print("[bold]The lab is up.[/] Ctrl-C stops it.")
            while True:
                lab.supervise()
                time.sleep(0.2)
        except (Stop, KeyboardInterrupt):
            console.print("stopping the lab ...")
        finally:
            # a second signal must not interrupt the graceful stop half-way
            stop_signals.ignore()
            lab.stop()
    console.print("the lab is stopped")
    return 0


def print_services(services: list[Service], broker_url: str) -> None:
    table = Table(title="Pool Lab")
    table.add_column("service")
    table.add_column("listens / node")
    table.add_row("redis", broker_url)
    for service in services:
        where = service.url or service.target
        if service.name == "collector":
            where = f"{where}/ (the pools side by side, live) · {where}/metrics"
        table.add_row(service.name, where)
    Console().print(table)


def run_status(args: argparse.Namespace) -> int:
    try:
        state = json.loads((args.run_dir / "state.json").read_text())
    except FileNotFoundError:
        raise CliError(f"the lab is not running (no {args.run_dir / 'state.json'})") from None
    settings = Settings(broker_url=state["broker_url"])
    rows = []
    for entry in state["services"]:
        entry.setdefault("restarts", 0)
        entry.setdefault("restarting", False)
        try:
            os.kill(entry["pid"], 0)
            alive = not entry["restarting"]
        except ProcessLookupError:
            alive = False
        service = Service(entry["name"], (), entry["check"], entry["target"], entry["url"])
        healthy = alive and is_healthy(service, settings)
        rows.append({**entry, "alive": alive, "healthy": healthy})
    if args.json:
        print(json.dumps({"broker_url": state["broker_url"], "services": rows}, indent=2))
    else:
        table = Table(title=f"Pool Lab (broker {state['broker_url']})")
        for column in ("service", "pid", "state", "restarts", "listens / node"):
            table.add_column(column)
        for row in rows:
            if row["healthy"]:
                word = "[green]healthy[/]"
            elif row["alive"]:
                word = "[yellow]starting/unhealthy[/]"
            elif row["restarting"]:
                word = f"[red]exited ({row.get('last_exit')})[/], restarting"
            else:
                word = "[red]exited[/]"
            table.add_row(
                row["name"],
                str(row["pid"]),
                word,
                str(row["restarts"]),
                row["url"] or row["target"],
            )
        Console().print(table)
    return 0 if all(row["healthy"] for row in rows) else 1
