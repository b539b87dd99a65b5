"""The experiments by name, in the order `poollab demo all` runs them.

Modules are imported only when their experiment runs, so `poollab demo --help` stays quick and
one experiment's heavy imports (aiohttp, gevent) never slow down another.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult

Experiment = Callable[[DemoContext], DemoResult]


@dataclass(frozen=True)
class Entry:
    name: str
    module: str
    summary: str

    def load(self) -> Experiment:
        module = importlib.import_module(self.module)
        run: Experiment = module.run
        return run


ENTRIES: tuple[Entry, ...] = (
    Entry(
        "executors",
        "poollab.demo.executors",
        "tiny jobs: process pools vs threads vs a loop, and the job size where processes win",
    ),
    Entry("gil", "poollab.demo.gil", "CPU-bound Python in 1/2/4 threads and 1/2/4 processes"),
    Entry("sleep", "poollab.demo.sleep", "time.sleep in threads overlaps: long and short sleepers"),
    Entry(
        "start-methods",
        "poollab.demo.start_methods",
        "fork, spawn, forkserver: start time and child memory, copy-on-write",
    ),
    Entry(
        "coroutines-vs-threads",
        "poollab.demo.coroutines_vs_threads",
        "time and memory to create and hold 1k/10k/100k coroutines and threads",
    ),
    Entry(
        "event-loops",
        "poollab.demo.event_loops",
        "echo and HTTP on loopback: default asyncio loop vs uvloop",
    ),
    Entry(
        "gevent-patch",
        "poollab.demo.gevent_patch",
        "blocking sockets in greenlets, with and without monkey-patching",
    ),
    Entry(
        "selectors",
        "poollab.demo.selectors_demo",
        "slow requests: blocking sockets, threads, a hand-written selector loop, asyncio",
    ),
    Entry(
        "blocked-loop",
        "poollab.demo.blocked_loop",
        "a loop's lag while coroutines block it: inline, to_thread, a process pool",
    ),
    Entry(
        "anyio",
        "poollab.demo.anyio_demo",
        "one AnyIO program on asyncio, uvloop and trio; async file reads",
    ),
    Entry(
        "free-threading",
        "poollab.demo.free_threading",
        "CPU-bound threads on a free-threaded build (3.13t+, --python PATH)",
    ),
    Entry(
        "subinterpreters",
        "poollab.demo.subinterpreters",
        "CPU-bound calls in InterpreterPoolExecutor, threads, processes (CPython 3.14)",
    ),
)

NAMES: tuple[str, ...] = tuple(entry.name for entry in ENTRIES)


def get(name: str) -> Entry | None:
    return next((entry for entry in ENTRIES if entry.name == name), None)
