"""``poollab submit``: publish jobs like the API does, optionally wait and summarise them."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from poollab import userjobs
from poollab.celery_config import make_client
from poollab.cli import CliError
from poollab.jobs import KINDS
from poollab.measure.collect import collect
from poollab.producer.publish import BrokerUnavailable, RequestInvalid, parse_request, publish
from poollab.settings import ALL_POOLS, NoBrokerError, lab_client_settings
from poollab.timings import summarize

console = Console(stderr=True)

_PARAM_FLAGS = ("x", "ms", "n", "jitter_ms", "fail_rate", "bytes")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="publish jobs to a pool's queue (and wait for them)",
        description="Publish COUNT jobs of one kind to one pool's queue, by task name.",
    )
    parser.add_argument("--pool", required=True, choices=ALL_POOLS)
    parser.add_argument("--kind", required=True, choices=(*KINDS, userjobs.USER_KIND))
    parser.add_argument(
        "--task", help="user: MODULE:FUNCTION of a job registered from POOLLAB_JOBS"
    )
    parser.add_argument(
        "--params", help="user: the keyword arguments, a JSON object (e.g. '{\"size\": 10}')"
    )
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--x", help="noop: the value to return (JSON or a string)")
    parser.add_argument("--ms", type=int, help="sleep, io, mixed: milliseconds")
    parser.add_argument("--n", type=int, help="cpu, mixed: steps of CPU work")
    parser.add_argument("--jitter-ms", type=int, help="io: upstream latency jitter")
    parser.add_argument("--fail-rate", type=float, help="io: share of upstream failures")
    parser.add_argument("--bytes", type=int, help="io: response size")
    parser.add_argument("--wait", action="store_true", help="wait for results and summarise")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    if args.kind == userjobs.USER_KIND:
        return _user_params(args.params)
    params: dict[str, Any] = {}
    for name in _PARAM_FLAGS:
        value = getattr(args, name)
        if value is None:
            continue
        if name == "x":
            with contextlib.suppress(json.JSONDecodeError):  # else a plain string
                value = json.loads(value)
        params[name] = value
    return params


def _user_params(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text is not None else {}
    except json.JSONDecodeError as exc:
        raise CliError(f"--params: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"--params: must be a JSON object, got {type(value).__name__}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        settings = lab_client_settings()
    except NoBrokerError as exc:
        raise CliError(str(exc)) from None
    payload = {"pool": args.pool, "kind": args.kind, "params": _params(args), "count": args.count}
    user_jobs: dict[str, userjobs.UserJob] = {}
    if args.kind == userjobs.USER_KIND:
        payload["task"] = args.task
        try:
            user_jobs = userjobs.by_spec(userjobs.registered())
        except userjobs.UserJobError as exc:
            raise CliError(f"POOLLAB_JOBS: {exc}") from None
    try:
        request, params = parse_request(payload, settings, user_jobs)
    except RequestInvalid as exc:
        flags = ", ".join(
            f"--{e.field.removeprefix('params.').replace('_', '-')}: {e.message}"
            for e in exc.errors
        )
        raise CliError(flags) from None
    app = make_client("poollab-submit", settings)
    started = time.time()
    try:
        ids = publish(
            app,
            request.pool,
            request.kind,
            params,
            request.count,
            settings.publish_waitaof_ms,
            task=request.task_name,
        )
    except BrokerUnavailable as exc:
        raise CliError(f"{exc} (published {len(exc.published)} of {request.count})") from None
    published_s = time.time() - started
    console.print(
        f"published {len(ids)} {request.kind} jobs to '{request.pool}' "
        f"in {published_s:.2f} s ({len(ids) / max(published_s, 1e-9):,.0f}/s)"
    )
    if not args.wait:
        for task_id in ids:
            print(task_id)
        return 0
    return _wait_and_summarise(app, ids, started, args)


def _wait_and_summarise(app: Any, ids: list[str], started: float, args: argparse.Namespace) -> int:
    columns = (
        TextColumn("waiting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("jobs", total=len(ids))
        collected = collect(
            app.backend.client,
            ids,
            args.timeout,
            on_progress=lambda done: progress.update(bar, completed=done),
        )
    failures = collected.failures()
    summary = summarize(
        collected.timings(), jobs=len(ids), failed=len(failures), first_sent=started
    )
    missing = len(ids) - summary.completed - summary.failed
    if args.json:
        print(json.dumps({**summary.as_dict(), "missing": missing}, indent=2))
    else:
        table = Table(title=f"{args.kind} jobs on {args.pool}")
        for column in ("jobs", "completed", "failed", "jobs/s", "p50 ms", "p95 ms", "p99 ms"):
            table.add_column(column, justify="right")
        lat = summary.latency_ms
        table.add_row(
            str(summary.jobs),
            str(summary.completed),
            str(summary.failed),
            f"{summary.throughput_per_s:,.1f}",
            *(f"{lat.get(q, float('nan')):,.1f}" for q in ("p50", "p95", "p99")),
        )
        Console().print(table)
        for task_id, reason in list(failures.items())[:5]:
            console.print(f"[red]failed[/] {task_id}: {reason}")
    if missing:
        console.print(f"[red]{missing} jobs not finished within {args.timeout:.0f} s[/]")
        return 1
    return 0 if not failures else 1
