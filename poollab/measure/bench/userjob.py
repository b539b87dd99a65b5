"""``poollab bench --job MODULE:FUNCTION``: the user's own callable as the bench's workloads.

Before the lab starts, a bad ``--job`` or ``--params`` is refused with a message and nothing
is started: the callable must import, be callable, and accept each parameter set
(``inspect.signature(...).bind``). Each parameter set becomes one workload of the matrix,
whose jobs are the task the lab's registry (:mod:`poollab.userjobs`) names after the callable,
``poollab.user.<module>.<function>``, which every consumer registers from POOLLAB_JOBS. Then:
its bare loop (:mod:`poollab.measure.bench.userprobe`), and what the report says about it.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poollab.measure.bench.ceilings import ASYNCIO_EXECUTOR, UserCalibration
from poollab.measure.bench.config import WORKLOADS, ConfigError, UserWorkload
from poollab.userjobs import GEVENT_ASYNC_THREADS

if TYPE_CHECKING:
    from poollab.measure.bench.results import BenchRun

# the consumers' how-to-run wording, per pool (the asyncio consumer's depends on the callable)
WHERE = {
    "prefork": "in a prefork child process",
    "threads": "on one of the pool's threads",
    "gevent": "in a greenlet (it yields only where gevent patched a blocking call)",
    "solo": "in the worker's only thread",
}


def import_path(cwd: Path | None = None) -> str:
    """The directory user modules are imported from: the bench's cwd, as a shell runs it."""
    return str((cwd or Path.cwd()).resolve())


def read_param_sets(params: str | None, params_file: Path | None) -> list[dict[str, Any]]:
    """``--params`` (one JSON object) or ``--params-file`` (a JSON list of objects)."""
    if params is not None and params_file is not None:
        raise ConfigError("--params and --params-file: give one of them, not both")
    if params_file is not None:
        try:
            text = params_file.read_text()
        except OSError as exc:
            raise ConfigError(f"--params-file: cannot read {params_file}: {exc.strerror}") from None
        sets = _json(text, "--params-file")
        if not isinstance(sets, list) or not sets:
            raise ConfigError(
                f"--params-file: {params_file} must hold a non-empty JSON list of objects, "
                f"got {_kind(sets)}"
            )
        for i, item in enumerate(sets):
            if not isinstance(item, dict):
                raise ConfigError(
                    f"--params-file: item {i} of {params_file} must be a JSON object, "
                    f"got {_kind(item)}"
                )
        return sets
    value = _json(params if params is not None else "{}", "--params")
    if not isinstance(value, dict):
        raise ConfigError(f"--params: must be a JSON object, got {_kind(value)}")
    return [value]


def _json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option}: not JSON: {exc}") from None


def _kind(value: Any) -> str:
    names: dict[type, str] = {list: "a list", dict: "an object", str: "a string"}
    return names.get(type(value), type(value).__name__)


def load_user_workloads(spec: str, param_sets: list[dict[str, Any]]) -> tuple[UserWorkload, ...]:
    """The callable, checked against every parameter set; ConfigError names what is wrong."""
    from poollab.userjobs import UserJobError, load_spec

    try:
        job = load_spec(spec)
    except UserJobError as exc:
        raise ConfigError(f"--job: {exc}") from None
    try:
        signature: inspect.Signature | None = inspect.signature(job.fn)
    except (TypeError, ValueError):  # some C callables have none: the consumers will tell
        signature = None
    for i, params in enumerate(param_sets):
        where = "--params" if len(param_sets) == 1 else f"--params-file item {i}"
        if signature is None:
            continue
        try:
            signature.bind(**params)
        except TypeError as exc:
            raise ConfigError(
                f"{where}: {spec}{signature} does not accept {json.dumps(params)}: {exc}"
            ) from None
    name = job.function if job.function not in WORKLOADS else f"{job.module}.{job.function}"
    return tuple(
        UserWorkload(
            name=name if len(param_sets) == 1 else f"{name}#{i + 1}",
            spec=spec,
            module=job.module,
            task_name=job.task_name,
            is_async=job.is_async,
            params=params,
        )
        for i, params in enumerate(param_sets)
    )


def worker_environ(
    environ: dict[str, str], user_jobs: tuple[UserWorkload, ...], cwd: str | None = None
) -> dict[str, str]:
    """The bench's environment for its consumers: POOLLAB_JOBS names the job's module and
    the cwd goes on PYTHONPATH, so that every consumer imports and registers it."""
    if not user_jobs:
        return environ
    modules = list(dict.fromkeys(w.module for w in user_jobs))
    path = [cwd or import_path(), *filter(None, environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **environ,
        "POOLLAB_JOBS": ",".join(modules),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(path)),
    }


def how_run(workload: UserWorkload, pool: str, consumer_argv: list[str] | tuple[str, ...]) -> str:
    """How a consumer ran the callable, in words, for the report."""
    if pool == "asyncio":
        if workload.is_async:
            return "awaited on the consumer's event loop, as one of its tasks"
        return f"in the consumer's {consumer_executor(consumer_argv)} executor, off its loop"
    where = WHERE.get(pool, f"by the {pool} pool")
    if workload.is_async and pool == "gevent":
        return (
            "`asyncio.run` per job (a new event loop each time), in a native thread of gevent's "
            f"hub threadpool (up to {GEVENT_ASYNC_THREADS}) while its greenlet waits"
        )
    if workload.is_async:
        return f"`asyncio.run` per job (a new event loop each time), {where}"
    return f"called {where}"


def consumer_executor(argv: list[str] | tuple[str, ...]) -> str:
    """The asyncio consumer's executor for plain callables: its ``--cpu-executor``."""
    args = list(argv)
    if "--cpu-executor" in args[:-1]:
        return args[args.index("--cpu-executor") + 1]
    return ASYNCIO_EXECUTOR


# the probe's bare loop is bounded (userprobe: seconds, calls, the threads test's budget);
# this is for a callable that hangs
PROBE_TIMEOUT_S = 120.0


class ProbeError(RuntimeError):
    """The callable failed (or hung) in its bare loop: the matrix would fail the same way."""


def calibrate_user(
    workloads: tuple[UserWorkload, ...], cores: int, environ: dict[str, str]
) -> dict[str, UserCalibration]:
    """Each workload's callable timed in a bare loop in a process of its own (userprobe),
    with the consumers' environment, so it imports exactly as they will."""
    found = {}
    env = worker_environ(environ, workloads)
    for workload in workloads:
        argv = [
            sys.executable, "-m", "poollab.measure.bench.userprobe", workload.spec,
            json.dumps(workload.params), "--threads", str(max(2, cores)),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise ProbeError(
                f"{workload.name}: the bare loop did not finish in {PROBE_TIMEOUT_S:.0f} s"
            ) from None
        if done.returncode != 0:
            said = done.stderr.strip().splitlines()
            raise ProbeError(
                f"{workload.name}: the callable failed in its bare loop (params "
                f"{json.dumps(workload.params)}): {said[-1] if said else done.returncode}"
            )
        found[workload.name] = UserCalibration(**json.loads(done.stdout))
    return found


def describe_run(run: BenchRun, workload: str) -> str | None:
    """For the report: a --job workload's bare-loop figures and how each consumer ran it."""
    user = run.config.user_job(workload)
    if user is None:
        return None
    text = f"`{user.spec}({_kwargs(user.params)})`, {'async' if user.is_async else 'plain'}."
    cal = run.references.user.get(workload)
    if cal is not None:
        text += (
            f" In a bare loop ({cal.jobs} calls, no queue): {cal.cpu_ms:.3g} ms of CPU and "
            f"{cal.wall_ms:.3g} ms of wall time per call, CPU ÷ wall {cal.cpu_share:.2f}; "
            + (
                f"{cal.threads} calls on {cal.threads} threads at once took "
                f"1/{cal.thread_speedup:.2f} of the time they took in a row (overlap "
                f"{cal.thread_overlap:.2f}: 0 = the GIL serialises them, 1 = fully parallel)."
                if math.isfinite(cal.thread_speedup)
                else "a call too long to time on threads at once (overlap unknown)."
            )
        )
    how = {c.pool: c.how_run for c in run.cells if c.workload == workload and c.how_run}
    if how:
        text += " How each consumer ran it: " + "; ".join(f"{p}: {h}" for p, h in how.items())
        text += "."
    return text


def _kwargs(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in params.items())
