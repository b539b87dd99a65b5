"""``poollab load``: Locust, headless, against the running lab; its CSV folded into a summary.

Locust runs as a subprocess (``locust -f loadtest/locustfile.py --headless ...``), never
imported here: it monkey-patches the standard library with gevent on import, which must
not happen to this process. What it writes (``locust_stats.csv``, the history, failures
and an HTML report) stays in ``--out``, beside ``load.json`` and ``load.md``: one row per
request type and ``pool:kind``, which :func:`summarize_locust_csv` reads back for the
bench report.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poollab.cli import CliError
from poollab.settings import NoBrokerError, Settings, lab_client_settings

USER_CLASSES = {"http": ["HttpJobUser"], "celery": ["CeleryJobUser"]}
USER_CLASSES["both"] = [*USER_CLASSES["http"], *USER_CLASSES["celery"]]
CSV_PREFIX = "locust"
DEFAULT_SPAWN_RATE = 10.0
# the step shape's top, in steps, when --step-max-users is not given
DEFAULT_STEPS = 5

# --compare's bounds (poollab.measure.compare): per pool jobs/s, and jobs in all
COMPARE_DEFAULT_RATE = 10.0
COMPARE_MAX_RATE = 1000.0
COMPARE_DEFAULT_MAX_JOBS = 20_000
COMPARE_MAX_JOBS = 200_000
COMPARE_MAX_RUN_S = 600

# Locust's CSV column → our key; times are milliseconds
_COLUMNS = {
    "Request Count": "requests",
    "Failure Count": "failures",
    "Requests/s": "rps",
    "Failures/s": "failures_per_s",
    "Average Response Time": "mean_ms",
    "Min Response Time": "min_ms",
    "Max Response Time": "max_ms",
    "50%": "p50_ms",
    "95%": "p95_ms",
    "99%": "p99_ms",
}


LOAD_DESCRIPTION = """\
Run Locust headless against the running lab for a set time: HTTP users post jobs to the
producer and wait for each result, Celery users send them to the broker by task name. Writes
Locust's CSV and HTML report and a summary (load.json, load.md) into --out. Each Locust user
waits for its job before sending the next (a closed loop), so a row's jobs/s is what its
users reached, not what the pool can do. --compare answers that instead: the same pools,
kinds, params, run time and --out, but every pool is offered the same fixed rate by a paced
publisher (an open model), and the table gives what each pool achieved. It is an option of
this command rather than a command of its own because it asks the same question of the same
mix, and its files sit beside Locust's.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="drive the running lab with Locust (headless), or offer every pool the same rate",
        description=LOAD_DESCRIPTION,
    )
    parser.add_argument(
        "-u", "--users", type=int,
        help="concurrent users, split evenly between the user classes, each user kept to one "
        "pool. Must be a multiple of pool shares × user classes (prefork,gevent:3 is 4 shares; "
        "both user classes make 2), so that every pool gets the same users of every class: "
        "any other count is refused, never changed. Default: that smallest count",
    )  # fmt: skip
    parser.add_argument("-r", "--spawn-rate", type=float, help="users started per second (10)")
    parser.add_argument(
        "-t", "--run-time", default="20s", help="how long: 20s, 2m, 1m30s (default 20s)"
    )
    parser.add_argument(
        "--user",
        choices=sorted(USER_CLASSES),
        help="http (through the producer), celery (straight to the broker) or both (default)",
    )
    parser.add_argument(
        "--host", help="the producer's URL (default http://127.0.0.1:POOLLAB_PRODUCER_PORT)"
    )
    # unset: POOLLAB_LOAD_*, or loadtest/loadmix.py's defaults
    parser.add_argument("--pools", help="pools and weights: prefork,gevent:2 (default: all)")
    parser.add_argument("--kinds", help="job kinds, comma-separated (default: io,cpu)")
    parser.add_argument("--params", help='per-kind params as JSON: {"io": {"ms": 20}}')
    parser.add_argument(
        "--assign", choices=["pool", "round-robin"],
        help="pool: each user keeps to one pool, users spread over the pools (default); "
        "round-robin: each user goes through every pool in turn",
    )  # fmt: skip
    parser.add_argument(
        "--job-timeout", type=float, default=30.0,
        help="seconds to wait for one job (30); with --compare, for the last results",
    )  # fmt: skip
    parser.add_argument(
        "--shape", choices=["constant", "step"],
        help="constant: --users throughout; step: a ramp that finds each pool's saturation",
    )  # fmt: skip
    parser.add_argument(
        "--step-users", type=int,
        help="users added per step; a multiple of pool shares × user classes, like --users "
        "(default: that smallest count)",
    )  # fmt: skip
    parser.add_argument("--step-time", type=float, help="seconds per step (10)")
    parser.add_argument(
        "--step-max-users", type=int,
        help="top step's users; a multiple of pool shares × user classes (default: 5 steps)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path(".poollab/load"), help="directory for the results"
    )
    parser.add_argument("--locustfile", type=Path, help="default: loadtest/locustfile.py")
    compare = parser.add_argument_group(
        "fixed offered load (--compare)",
        "Every pool is offered the same jobs/s on a fixed schedule for --run-time, whatever "
        "the completions; writes load-compare.json, .md and .png into --out. Uses --pools "
        "(no weights), --kinds, --params, --run-time, --job-timeout and --out; the Locust "
        "options are refused with it. Loopback brokers only.",
    )
    compare.add_argument(
        "--compare", action="store_true",
        help="offer every pool the same fixed rate instead of running Locust",
    )  # fmt: skip
    compare.add_argument(
        "--rate", type=float, default=None,
        help=f"jobs/s offered to each pool (default {COMPARE_DEFAULT_RATE:g}, "
        f"at most {COMPARE_MAX_RATE:g})",
    )  # fmt: skip
    compare.add_argument(
        "--max-jobs", type=int, default=None,
        help=f"refuse a run that would send more jobs than this in all "
        f"(default {COMPARE_DEFAULT_MAX_JOBS}, at most {COMPARE_MAX_JOBS})",
    )  # fmt: skip
    parser.set_defaults(func=run)


def parse_timespan(text: str) -> int:
    """Locust's time format (``20``, ``20s``, ``2m``, ``1h30m``) in seconds."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or match is None:
        raise CliError(f"--run-time: expected e.g. 20s, 2m or 1h30m, not {text!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def find_locustfile(given: Path | None) -> Path:
    if given is not None:
        if not given.is_file():
            raise CliError(f"--locustfile: no such file {given}")
        return given
    # the working tree (or /app in the image), then beside the installed package
    for candidate in (
        Path("loadtest/locustfile.py"),
        Path(__file__).resolve().parents[2] / "loadtest" / "locustfile.py",
    ):
        if candidate.is_file():
            return candidate
    raise CliError("cannot find loadtest/locustfile.py; pass --locustfile")


def locust_command() -> str:
    """This interpreter's locust, so the load runs with the project's pinned versions."""
    beside = Path(sys.executable).parent / "locust"
    if beside.exists():
        return str(beside)
    found = shutil.which("locust")
    if found is None:
        raise CliError("locust is not installed")
    return found


def load_mixer(locustfile: Path) -> Any:
    """``loadmix.py`` beside the locustfile (else the lab's own), loaded by path.

    The very code Locust's users build their mix with, so the pool shares counted here are
    the slots the users spread over, and a bad mix is refused with the same words before
    Locust starts. Loaded by path because ``loadtest/`` is not a package (Locust imports it
    from the locustfile's directory).
    """
    candidates = [locustfile.resolve().parent / "loadmix.py"]
    candidates.append(find_locustfile(None).resolve().parent / "loadmix.py")
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise CliError(f"no loadmix.py beside {locustfile}")
    name = "poollab_loadmix"
    loaded = sys.modules.get(name)
    if loaded is not None and Path(str(loaded.__file__)) == path:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Plan:
    """The run ``poollab load`` hands Locust, resolved: flags, then POOLLAB_LOAD_*, then defaults.

    Every value goes to Locust as a flag, so what this process checked is what runs.
    """

    pools: str
    kinds: str
    params: str
    assign: str
    shape: str
    # (pool, weight) in order; a weight is that many shares (slots) of the users
    weights: tuple[tuple[str, int], ...]
    classes: tuple[str, ...]
    users: int
    spawn_rate: float
    step_users: int | None = None
    step_time: float | None = None
    step_max_users: int | None = None

    @property
    def shares(self) -> int:
        return sum(weight for _, weight in self.weights)

    @property
    def unit(self) -> int:
        """The user counts that reach every pool with every class are this one's multiples.

        Locust splits the users evenly between the classes, and each class's users take the
        pool shares in turn (``assign="pool"``): fewer than a class's shares leave pools
        without that class, and a count between two multiples gives some pools one more.
        A round-robin user goes through every pool, so only the classes need covering.
        """
        return len(self.classes) * (self.shares if self.assign == "pool" else 1)

    def pool_users(self, users: int) -> dict[str, int]:
        """Users of each class that send to each pool, out of ``users`` in all."""
        per_class = users // len(self.classes)
        if self.assign != "pool":
            # each of them goes through every pool, one job at a time
            return {pool: per_class for pool, _ in self.weights}
        per_share = per_class // self.shares
        counts: dict[str, int] = {}
        for pool, weight in self.weights:
            counts[pool] = counts.get(pool, 0) + per_share * weight
        return counts

    def explain_unit(self) -> str:
        names = ", ".join(self.classes)
        classes = f"{len(self.classes)} user class{'es' if len(self.classes) > 1 else ''} ({names})"
        if self.assign != "pool":
            return classes
        shares = f"{self.shares} pool share{'s' if self.shares > 1 else ''} ({self.pools})"
        return f"{shares} × {classes}"


def check_user_count(option: str, count: int, plan: Plan) -> None:
    """Refuse a user count that leaves a pool without a user of every class, or uneven.

    Refused, not rounded: a count that runs is the count that was asked for, so two runs'
    figures (and a script's expectations) never differ by a silent correction.
    """
    unit = plan.unit
    if count >= unit and count % unit == 0:
        return
    above = max(unit, -(-count // unit) * unit)
    nearest = f"; the nearest above {count} is {above}" if above != unit else ""
    raise CliError(
        f"{option} {count} would leave pools without a user of every class or load them "
        f"unevenly: {plan.explain_unit()} need a multiple of {unit}; the smallest valid "
        f"{option} is {unit}{nearest}"
    )


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise CliError(f"{name} must be an integer, not {text!r}") from None


def resolve_plan(args: argparse.Namespace, mixer: Any) -> Plan:
    """The run's mix and user counts; refuses a mix Locust would refuse and a bad count."""
    env = os.environ
    pools = args.pools or env.get("POOLLAB_LOAD_POOLS") or mixer.default_pools()
    kinds = args.kinds or env.get("POOLLAB_LOAD_KINDS") or mixer.DEFAULT_KINDS
    params = args.params if args.params is not None else env.get("POOLLAB_LOAD_PARAMS", "")
    assign = args.assign or env.get("POOLLAB_LOAD_ASSIGN") or "pool"
    shape = args.shape or env.get("POOLLAB_LOAD_SHAPE") or "constant"
    if shape not in mixer.SHAPES:
        raise CliError(f"POOLLAB_LOAD_SHAPE must be one of {', '.join(mixer.SHAPES)}")
    try:
        mixer.build_mix(pools, kinds, params, args.job_timeout, assign)
        weights = tuple(mixer.parse_pools(pools))
    except mixer.MixError as exc:
        raise CliError(str(exc)) from None
    base = Plan(
        pools=pools, kinds=kinds, params=params, assign=assign, shape=shape,
        weights=weights, classes=tuple(USER_CLASSES[args.user or "both"]),
        users=0, spawn_rate=args.spawn_rate or DEFAULT_SPAWN_RATE,
    )  # fmt: skip
    users = args.users if args.users is not None else base.unit
    if shape == "constant":
        check_user_count("--users", users, base)
        return dataclasses.replace(base, users=users)
    step_users = args.step_users or _env_int("POOLLAB_LOAD_STEP_USERS") or base.unit
    check_user_count("--step-users", step_users, base)
    step_max = (
        args.step_max_users or _env_int("POOLLAB_LOAD_STEP_MAX_USERS") or step_users * DEFAULT_STEPS
    )
    check_user_count("--step-max-users", step_max, base)
    step_time = args.step_time
    if step_time is None and env.get("POOLLAB_LOAD_STEP_TIME"):
        step_time = float(env["POOLLAB_LOAD_STEP_TIME"])
    return dataclasses.replace(
        base, users=users, step_users=step_users, step_time=step_time, step_max_users=step_max
    )


def build_argv(
    args: argparse.Namespace, plan: Plan, locustfile: Path, host: str, prefix: Path
) -> list[str]:
    run_time_s = parse_timespan(args.run_time)
    argv = [
        locust_command(), "-f", str(locustfile), "--headless",
        "-u", str(plan.users), "-r", f"{plan.spawn_rate:g}", "-t", f"{run_time_s}s",
        "--host", host,
        "--csv", str(prefix), "--html", str(prefix.parent / f"{CSV_PREFIX}.html"),
        # a history row per pool:kind each second, not only the total: what the step
        # shape's per-pool throughput at each level is read from
        "--csv-full-history",
        # users finish the job they wait for (bounded by the job timeout), so every job
        # sent is also reported, and the counts match the workers'
        "--stop-timeout", f"{args.job_timeout:g}",
        "--only-summary", "--loglevel", "WARNING",
        "--load-job-timeout", f"{args.job_timeout:g}",
        # resolved here (flags, POOLLAB_LOAD_*, defaults) and checked: passed explicitly so
        # that Locust runs what was checked
        "--load-pools", plan.pools, "--load-kinds", plan.kinds,
        "--load-params", plan.params, "--load-assign", plan.assign,
        "--load-shape", plan.shape,
    ]  # fmt: skip
    optional = {
        "--step-users": plan.step_users,
        "--step-time": plan.step_time,
        "--step-max-users": plan.step_max_users,
    }
    for flag, value in optional.items():
        if value is not None:
            argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return [*argv, *plan.classes]


def _check_lab(args: argparse.Namespace, host: str, settings: Settings) -> None:
    from poollab.launcher.redis_server import answers

    if args.user in (None, "http", "both"):
        try:
            with urllib.request.urlopen(f"{host}/healthz", timeout=3):
                pass
        except (urllib.error.URLError, OSError) as exc:
            raise CliError(
                f"the producer does not answer at {host} ({exc}); is the lab up (`poollab up`)?"
            ) from None
    if args.user in (None, "celery", "both") and not answers(settings.broker_url):
        raise CliError(f"no Redis answers at {settings.broker_url} (POOLLAB_BROKER_URL)")


# the Locust options --compare has no use for, and the --compare options Locust has none for
LOCUST_ONLY = {
    "users": "-u/--users", "spawn_rate": "-r/--spawn-rate", "user": "--user",
    "host": "--host", "assign": "--assign", "shape": "--shape",
    "step_users": "--step-users", "step_time": "--step-time",
    "step_max_users": "--step-max-users", "locustfile": "--locustfile",
}  # fmt: skip
COMPARE_ONLY = {"rate": "--rate", "max_jobs": "--max-jobs"}


def _refuse_given(args: argparse.Namespace, options: dict[str, str], why: str) -> None:
    given = [flag for key, flag in options.items() if getattr(args, key, None) is not None]
    if given:
        raise CliError(f"{', '.join(given)}: {why}")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.job_timeout <= 600:
        raise CliError("--job-timeout must be in (0, 600] seconds")
    run_time_s = parse_timespan(args.run_time)
    if run_time_s < 1:
        raise CliError("--run-time must be at least 1 s")
    if args.compare:
        _refuse_given(args, LOCUST_ONLY, "only for a Locust run, not with --compare")
        from poollab.measure.compare import run_compare

        return run_compare(args)
    _refuse_given(args, COMPARE_ONLY, "only with --compare")
    if (args.users is not None and args.users < 1) or (
        args.spawn_rate is not None and args.spawn_rate <= 0
    ):
        raise CliError("--users must be at least 1 and --spawn-rate above 0")
    locustfile = find_locustfile(args.locustfile)
    plan = resolve_plan(args, load_mixer(locustfile))
    try:
        settings = lab_client_settings()
    except NoBrokerError as exc:
        raise CliError(str(exc)) from None
    host = (args.host or f"http://127.0.0.1:{settings.producer_port}").rstrip("/")
    _check_lab(args, host, settings)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / CSV_PREFIX
    argv = build_argv(args, plan, locustfile, host, prefix)
    # bounded: the run, the graceful stop, and a margin for Locust's start and exit
    limit_s = run_time_s + args.job_timeout + 60
    started = time.time()
    log_path = out / f"{CSV_PREFIX}.log"
    per_pool = plan.pool_users(plan.step_max_users or plan.users)
    spread = ", ".join(f"{pool} {n}" for pool, n in per_pool.items())
    top = "up to " if plan.shape == "step" else ""
    print(
        f"locust: {top}{plan.step_max_users or plan.users} users for {run_time_s} s against "
        f"{host}; each pool has {top}this many of each class ({', '.join(plan.classes)}): "
        f"{spread} (log: {log_path})"
    )
    # Locust's own output (its full table, its warnings) goes to the log; ours is shorter
    with log_path.open("wb") as log:
        try:
            completed = subprocess.run(
                # the broker checked above, also when it came from the running lab's state
                argv, env={**os.environ, "POOLLAB_BROKER_URL": settings.broker_url},
                timeout=limit_s, check=False,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise CliError(
                f"locust did not finish within {limit_s:.0f} s; see {log_path}"
            ) from None
    stats = Path(f"{prefix}_stats.csv")
    if completed.returncode not in (0, 1) or not stats.is_file():
        raise CliError(
            f"locust failed (exit status {completed.returncode}); the end of {log_path}:\n"
            + _tail(log_path)
        )
    rows = summarize_locust_csv(stats)
    per_pool = plan.pool_users(plan.step_max_users or plan.users)
    for row in rows:
        # the closed loop this row's jobs/s came from: that many users of its class on its
        # pool, each waiting for its job (all of the pool's kinds, taken in turn) before the next
        row["users"] = per_pool.get(str(row["pool"]))
    history = Path(f"{prefix}_stats_history.csv")
    steps = summarize_steps(history) if history.is_file() else []
    summary = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "host": host,
        "users": plan.users if plan.shape == "constant" else plan.step_max_users,
        "spawn_rate": plan.spawn_rate,
        "run_time_s": run_time_s,
        "shape": plan.shape,
        "pools": plan.pools,
        "kinds": plan.kinds,
        "assign": plan.assign,
        "user_classes": list(plan.classes),
        # users of each class on each pool (at the top step for the step shape)
        "users_per_pool": per_pool,
        "step": (
            {"users": plan.step_users, "max_users": plan.step_max_users}
            if plan.shape == "step"
            else None
        ),
        "rps_meaning": CLOSED_LOOP_NOTE,
        "locust_exit_code": completed.returncode,
        "files": {
            "stats": stats.name,
            "history": f"{CSV_PREFIX}_stats_history.csv",
            "failures": f"{CSV_PREFIX}_failures.csv",
            "html": f"{CSV_PREFIX}.html",
            "log": log_path.name,
        },
        "rows": rows,
        # per user level (the step shape's steps; one level for a constant run)
        "steps": steps,
    }
    (out / "load.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "load.md").write_text(markdown_table(rows, summary) + markdown_steps(steps))
    _print_rows(rows, summary)
    print(f"results in {out}/ (load.md, load.json, {stats.name}, {CSV_PREFIX}.html)")
    failed = sum(row["failures"] for row in rows)
    if completed.returncode != 0:
        # Locust exits 1 when any request failed: so does this command, after writing it all
        print(f"{failed} of {sum(row['requests'] for row in rows)} jobs failed; "
              f"see {CSV_PREFIX}_failures.csv", file=sys.stderr)  # fmt: skip
    return completed.returncode


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _number(text: str | None) -> float | None:
    if text is None or text.strip() in ("", "N/A"):
        return None
    return float(text)


def summarize_locust_csv(path: str | Path) -> list[dict[str, Any]]:
    """One dict per request row of Locust's ``*_stats.csv`` (the Aggregated row left out).

    ``path`` is the stats file or the ``--csv`` prefix it was written with. Keys: ``type``
    (``http`` or ``celery``), ``name`` (``pool:kind``), ``pool``, ``kind``, ``requests``,
    ``failures``, ``rps``, ``failures_per_s``, ``mean_ms``, ``min_ms``, ``max_ms``,
    ``p50_ms``, ``p95_ms``, ``p99_ms`` (None where Locust wrote N/A). ``rps`` is over the
    whole run, ramp-up included.
    """
    stats = Path(path)
    if not stats.name.endswith("_stats.csv"):
        stats = Path(f"{stats}_stats.csv")
    rows: list[dict[str, Any]] = []
    with stats.open(newline="") as handle:
        for record in csv.DictReader(handle):
            if record.get("Name") == "Aggregated":
                continue
            name = record["Name"]
            pool, _, kind = name.partition(":")
            row: dict[str, Any] = {
                "type": record["Type"],
                "name": name,
                "pool": pool if kind else None,
                "kind": kind or None,
            }
            for column, key in _COLUMNS.items():
                value = _number(record.get(column))
                row[key] = int(value) if key in ("requests", "failures") and value else value
            row["requests"] = row["requests"] or 0
            row["failures"] = row["failures"] or 0
            rows.append(row)
    return rows


def summarize_steps(path: str | Path, min_seconds: float = 2.0) -> list[dict[str, Any]]:
    """Jobs/s of each ``pool:kind`` at each number of users, from a full-history CSV.

    Locust writes one history row per request name each second, with its running total;
    within a stretch of seconds at one user count, the total's increase over the time is
    that level's throughput. A level shorter than ``min_seconds`` (a ramp passing through)
    is left out. ``saturated`` marks the first level whose throughput is not 10 % above the
    previous one's: the pool's saturation point, where more users add only latency.
    """
    levels: dict[tuple[str, str, int], list[tuple[float, int, float | None]]] = {}
    with Path(path).open(newline="") as handle:
        for record in csv.DictReader(handle):
            users = int(record["User Count"] or 0)
            if record["Name"] == "Aggregated" or users == 0:
                continue
            key = (record["Type"], record["Name"], users)
            total = int(record["Total Request Count"] or 0)
            levels.setdefault(key, []).append(
                (float(record["Timestamp"]), total, _number(record.get("95%")))
            )
    steps: list[dict[str, Any]] = []
    for (via, name, users), samples in sorted(levels.items()):
        (start, first, _), (end, last, _) = samples[0], samples[-1]
        if end - start < min_seconds:
            continue
        p95s = sorted(p for _, _, p in samples if p is not None)
        pool, _, kind = name.partition(":")
        steps.append(
            {
                "type": via, "name": name, "pool": pool, "kind": kind or None,
                "users": users, "seconds": end - start, "jobs": last - first,
                "jobs_per_s": (last - first) / (end - start),
                "p95_ms": p95s[len(p95s) // 2] if p95s else None,
                "saturated": False,
            }
        )  # fmt: skip
    marked: set[tuple[str, str]] = set()
    for previous, step in itertools.pairwise(steps):
        series = (str(step["type"]), str(step["name"]))
        if series in marked or (previous["type"], previous["name"]) != series:
            continue
        if step["jobs_per_s"] < previous["jobs_per_s"] * 1.1:
            step["saturated"] = True
            marked.add(series)
    return steps


def markdown_steps(steps: list[dict[str, Any]]) -> str:
    levels = sorted({step["users"] for step in steps})
    if len(levels) < 2:
        return ""
    names = sorted({(step["type"], step["name"]) for step in steps})
    by_key = {(s["type"], s["name"], s["users"]): s for s in steps}
    lines = [
        "## Jobs/s at each step (total users)",
        "",
        "Each step's users are spread evenly over the pools and user classes (the step size "
        "is a multiple of pool shares × classes), so a row's figure is its pool's closed "
        "loop at that level. A * marks the first step no more than 10 % above the one "
        "before: that pool's saturation point, past which more users only wait longer.",
        "",
        "| via | pool:kind | " + " | ".join(str(u) for u in levels) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in levels) + " |",
    ]
    for via, name in names:
        cells = []
        for users in levels:
            step = by_key.get((via, name, users))
            if step is None:
                cells.append("–")
            else:
                cells.append(f"{step['jobs_per_s']:.1f}" + (" *" if step["saturated"] else ""))
        lines.append(f"| {via} | {name} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""]) + "\n"


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


CLOSED_LOOP_NOTE = (
    "closed loop: each user waits for its job before sending the next, so a row's jobs/s "
    "is what that many users reached (users ÷ latency; a pool's users take its kinds in "
    "turn, so each pool:kind row has its share), not what the pool can do; "
    "`poollab load --compare` offers every pool the same rate and gives that"
)


def table_columns(
    rows: list[dict[str, Any]], summary: dict[str, Any]
) -> list[tuple[str, str, int]]:
    """The summary's columns; the jobs/s title says whose rate it is."""
    counts = {row.get("users") for row in rows}
    top = "≤" if summary.get("shape") == "step" else ""
    if len(counts) == 1 and None not in counts:
        (count,) = counts
        rate = f"jobs/s per {top}{count} user{'s' if count != 1 else ''}"
    else:
        rate = "jobs/s per row's users"
    return [
        ("type", "via", 0),
        ("name", "pool:kind", 0),
        ("users", f"users{' (top)' if top else ''}", 0),
        ("requests", "jobs", 0),
        ("failures", "failed", 0),
        ("rps", rate, 1),
        ("p50_ms", "p50 ms", 0),
        ("p95_ms", "p95 ms", 0),
        ("p99_ms", "p99 ms", 0),
        ("max_ms", "max ms", 0),
    ]


def _spread(summary: dict[str, Any]) -> str:
    per_pool = summary.get("users_per_pool") or {}
    return ", ".join(f"{pool} {count}" for pool, count in per_pool.items())


def markdown_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    columns = table_columns(rows, summary)
    classes = summary["user_classes"]
    lines = [
        "# Load (Locust)",
        "",
        f"{summary['users']} users ({summary['shape']} shape), {summary['run_time_s']} s "
        f"against {summary['host']}; users: {', '.join(classes)}. Users of each class on "
        f"each pool ({summary.get('assign', 'pool')} assignment): {_spread(summary)}. "
        "Time is each job's end-to-end latency as the user saw it (send → result).",
        "",
        f"Jobs/s is {CLOSED_LOOP_NOTE}.",
        "",
        "| " + " | ".join(title for _, title, _ in columns) + " |",
        "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(columns))) + " |",
    ]
    for row in sorted(rows, key=lambda r: (r["type"], r["name"])):
        cells = [_fmt(row.get(key), digits) for key, _, digits in columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Locust's own files: {', '.join(summary['files'].values())}.", ""]
    return "\n".join(lines)


def _print_rows(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = table_columns(rows, summary)
    table = Table(
        title="Pool Lab load (Locust)",
        caption=f"jobs/s: {CLOSED_LOOP_NOTE}",
    )
    for index, (_, title, _) in enumerate(columns):
        if index < 2:
            table.add_column(title, no_wrap=True)
        else:
            table.add_column(title, justify="right")
    for row in sorted(rows, key=lambda r: (r["type"], r["name"])):
        table.add_row(*(_fmt(row.get(key), digits) for key, _, digits in columns))
    # a pipe or a CI log gets 80 columns from rich, too few for ten columns of figures
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    console.print(table)
