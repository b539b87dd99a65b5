"""How each configuration ran its jobs, in words: what a verdict compares.

Five consumers with one ``-c`` mean five different things: prefork's c is processes, threads'
c threads sharing one GIL, gevent's c greenlets on one thread, and the asyncio consumer's c
tasks on one event loop, whose CPU work goes to an executor (processes by default) or runs
on the loop itself. A comparison that forgets it compares 2 cores with 1.
"""

from __future__ import annotations

from poollab.consumer.config import ConsumerConfig
from poollab.measure.bench.ceilings import EXECUTOR_WORKLOADS, References, usable_cores
from poollab.measure.bench.results import BenchCell

# what the consumer runs CPU work in when its command does not say (`--cpu-executor`)
DEFAULT_EXECUTOR: str = ConsumerConfig(nodename="").cpu_executor


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def asyncio_executor(cell: BenchCell, refs: References) -> tuple[str, int]:
    """The asyncio consumer's CPU executor (process, thread or inline) and its size, read
    from the command the cell's consumer ran (the consumer's defaults where not given)."""
    argv = list(cell.command.argv)
    workers = _option(argv, "--cpu-workers")
    kind = _option(argv, "--cpu-executor") or DEFAULT_EXECUTOR
    return kind, int(workers) if workers else refs.asyncio_cpu_workers


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def in_executor(cell: BenchCell, refs: References) -> bool:
    """Whether the asyncio consumer ran the cell's job bodies in its CPU executor: the
    built-in CPU kinds, and a --job callable that is a plain function (async ones it awaits
    on its loop)."""
    own = refs.user.get(cell.workload)
    if own is not None:
        return not own.is_async
    return cell.workload in EXECUTOR_WORKLOADS


def execution_model(cell: BenchCell, refs: References) -> str:
    """ "2 processes", "16 threads in one process (one GIL)", "one event loop + a 2-process
    CPU executor", ... for the cell's pool, concurrency and workload."""
    c = cell.concurrency
    if cell.pool == "prefork":
        return _plural(c, "process", "processes")
    if cell.pool == "threads":
        return f"{_plural(c, 'thread', 'threads')} in one process (one GIL)"
    if cell.pool == "gevent":
        return f"{_plural(c, 'greenlet', 'greenlets')} on one thread"
    if cell.pool == "solo":
        return "one thread"
    if cell.pool == "asyncio":
        if not in_executor(cell, refs):
            return f"one event loop, up to {_plural(c, 'task', 'tasks')} at once"
        kind, workers = asyncio_executor(cell, refs)
        if kind == "process":
            return f"one event loop + a {workers}-process CPU executor"
        if kind == "thread":
            return f"one event loop + a {workers}-thread CPU executor (one GIL)"
        return "one event loop, CPU work inline on the loop"
    return f"{cell.pool} at c={c}"


def cores_usable(cell: BenchCell, refs: References) -> int:
    """Cores the cell's job bodies could run on at once (the cores bound's numerator)."""
    if cell.pool == "asyncio" and in_executor(cell, refs):
        kind, workers = asyncio_executor(cell, refs)
        if kind != "process":
            return 1
        return max(1, min(workers, refs.cores))
    return usable_cores(refs, cell.pool, cell.workload, cell.concurrency)
