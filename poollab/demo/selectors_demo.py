"""Selectors: the event loop built up from sockets.

The same N requests to a loopback server that answers after a set delay: on blocking sockets
one after another, on blocking sockets in N threads, in a hand-written ``selectors`` loop over
non-blocking sockets on one thread, and on asyncio (whose loop is that same selector loop).
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from matplotlib.axes import Axes

from poollab.demo.context import DemoContext
from poollab.demo.loopback import HOST
from poollab.demo.result import DemoResult, Row, Verdict, verdict_from
from poollab.demo.slow_clients import (
    REQUEST,
    async_request,
    blocking_request,
    nonblocking_recv_error,
)
from poollab.demo.slow_server import SlowEchoServer
from poollab.measure import charts

NAME = "selectors"
CLAIM = (
    "One thread watching many non-blocking sockets in a selector serves N slow requests in "
    "about one server delay (within 3 delays), as asyncio does and as N threads do; blocking "
    "sockets one after another take N delays (at least 95% of them)."
)
TALK = (
    "blocking recv waits; a non-blocking socket raises when no data is there; a selector hands "
    "back the ready sockets; asyncio's loop registers every socket in one selector"
)
# "about one server delay": every request waits at once, so N of them take one delay plus the
# cost of N connects and reads; 3 delays leaves room for a busy machine's late wake-ups
OVERLAP_DELAYS = 3
# one after another cannot take less than N delays; the share allows for timer granularity
SERIAL_SHARE = 0.95
METHODS = ("blocking, one after another", "blocking, a thread each", "selector loop", "asyncio")


@dataclass
class _Run:
    method: str = ""
    wall_s: float = 0.0
    ok: int = 0
    threads: set[int] = field(default_factory=set)
    finished_s: list[float] = field(default_factory=list)


def run(ctx: DemoContext) -> DemoResult:
    count = ctx.pick(20, 100)
    delay = ctx.pick(0.1, 0.2)
    timeout = count * delay + 10
    runners: dict[str, Callable[[int, int, float], _Run]] = {
        METHODS[0]: _serial,
        METHODS[1]: _threaded,
        METHODS[2]: _selector,
        METHODS[3]: _asyncio,
    }
    runs: list[_Run] = []
    with (
        SlowEchoServer(delay) as server,
        ctx.progress.task("selectors: four clients", total=len(runners)) as advance,
    ):
        for method, runner in runners.items():
            done = runner(server.port, count, timeout)
            done.method = method
            runs.append(done)
            advance(1)
    rows: list[Row] = [
        {
            "method": r.method,
            "threads": len(r.threads),
            "requests": count,
            "ok": r.ok,
            "server_delay_ms": round(delay * 1000),
            "wall_s": round(r.wall_s, 3),
            "delays": round(r.wall_s / delay, 1),
        }
        for r in runs
    ]
    verdict, reason = _verdict(rows, count, delay)
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=["method", "threads", "requests", "ok", "server_delay_ms", "wall_s", "delays"],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary={
            "serial_s": rows[0]["wall_s"],
            "threads_s": rows[1]["wall_s"],
            "selector_s": rows[2]["wall_s"],
            "asyncio_s": rows[3]["wall_s"],
            "nonblocking_recv_without_data": nonblocking_recv_error(),
        },
        notes=[
            f"each request: connect to a loopback server, send a line, read the line it sends "
            f"back after {delay * 1000:.0f} ms; delays = wall_s / server delay",
            "threads: the client threads that ran requests (the server's own threads, in this "
            "process too, are not counted)",
            f"held means: selector loop and asyncio on 1 thread and within {OVERLAP_DELAYS} "
            f"delays, a thread each within {OVERLAP_DELAYS} delays, one after another at least "
            f"{SERIAL_SHARE:.0%} of {count} delays; every request answered",
        ],
        chart=_chart(ctx, runs, delay),
        quick=ctx.quick,
    )


def _timed(work: Callable[[_Run, float], None]) -> _Run:
    done = _Run()
    start = time.perf_counter()
    work(done, start)
    done.wall_s = time.perf_counter() - start
    return done


def _serial(port: int, count: int, timeout: float) -> _Run:
    def work(done: _Run, start: float) -> None:
        for _ in range(count):
            _one_blocking(done, port, timeout, start)

    return _timed(work)


def _threaded(port: int, count: int, timeout: float) -> _Run:
    def work(done: _Run, start: float) -> None:
        threads = [
            threading.Thread(target=_one_blocking, args=(done, port, timeout, start), daemon=True)
            for _ in range(count)
        ]
        for thread in threads:
            thread.start()
        give_up = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, give_up - time.monotonic()))

    return _timed(work)


def _one_blocking(done: _Run, port: int, timeout: float, start: float) -> None:
    answer = blocking_request(port, timeout)
    # list.append and set.add are atomic under the GIL: the threads share them safely
    done.threads.add(threading.get_ident())
    if answer == REQUEST:
        done.ok += 1
        done.finished_s.append(time.perf_counter() - start)


def _selector(port: int, count: int, timeout: float) -> _Run:
    def work(done: _Run, start: float) -> None:
        answers = selector_loop(port, count, time.monotonic() + timeout)
        done.threads.add(threading.get_ident())
        done.ok = sum(answer == REQUEST for answer, _ in answers)
        done.finished_s = [t - start for _, t in answers]

    return _timed(work)


# --- the talk's event loop, by hand: what `docs/TALK.md` quotes -------------------------


@dataclass
class Conn:
    sock: socket.socket
    answer: bytes = b""


def selector_loop(port: int, count: int, deadline: float) -> list[tuple[bytes, float]]:
    """``count`` requests on one thread: non-blocking sockets in one selector, and a loop
    that only ever touches the sockets the selector says are ready. Returns each answer
    with the time it completed."""
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)  # connect, send and recv now return at once (or raise)
        sock.connect_ex((HOST, port))  # EINPROGRESS: connected once it is writable
        selector.register(sock, selectors.EVENT_WRITE, Conn(sock))
    answers: list[tuple[bytes, float]] = []
    while selector.get_map() and time.monotonic() < deadline:
        for key, events in selector.select(timeout=0.5):  # the loop's only wait
            conn: Conn = key.data
            if events & selectors.EVENT_WRITE:
                conn.sock.send(REQUEST)  # a short line always fits the send buffer
                selector.modify(conn.sock, selectors.EVENT_READ, conn)
                continue
            chunk = conn.sock.recv(4096)  # ready: data (or end of stream) is there
            conn.answer += chunk
            if chunk and not conn.answer.endswith(b"\n"):
                continue  # part of the line: wait for the rest
            selector.unregister(conn.sock)
            conn.sock.close()
            answers.append((conn.answer, time.perf_counter()))
    for key in list(selector.get_map().values()):
        key.data.sock.close()  # past the deadline: what never answered
    selector.close()
    return answers


# ------------------------------------------------------------------------------------------


def _asyncio(port: int, count: int, timeout: float) -> _Run:
    def work(done: _Run, start: float) -> None:
        async def one() -> None:
            answer = await async_request(port)
            done.threads.add(threading.get_ident())
            if answer == REQUEST:
                done.ok += 1
                done.finished_s.append(time.perf_counter() - start)

        async def main() -> None:
            await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)

        asyncio.run(main())

    return _timed(work)


def _verdict(rows: list[Row], count: int, delay: float) -> tuple[Verdict, str]:
    by_method = {str(row["method"]): row for row in rows}
    serial, threaded, selector, in_asyncio = (by_method[m] for m in METHODS)
    wall = {m: float(by_method[m]["wall_s"] or 0) for m in METHODS}
    failures = []
    if any(row["ok"] != count for row in rows):
        failures.append(
            "not every request was answered: "
            + ", ".join(f"{row['method']} {row['ok']}/{count}" for row in rows)
        )
    for row in (selector, in_asyncio):
        if row["threads"] != 1:
            failures.append(f"{row['method']} ran on {row['threads']} threads, not 1")
    for row in (threaded, selector, in_asyncio):
        if wall[str(row["method"])] > OVERLAP_DELAYS * delay:
            failures.append(
                f"{row['method']} took {row['wall_s']} s, more than {OVERLAP_DELAYS} delays "
                f"({OVERLAP_DELAYS * delay:.2f} s)"
            )
    if wall[METHODS[0]] < SERIAL_SHARE * count * delay:
        failures.append(
            f"one after another took {serial['wall_s']} s, less than {SERIAL_SHARE:.0%} of "
            f"{count} delays"
        )
    return verdict_from(
        failures,
        lambda: (
            f"{count} requests: one after another {wall[METHODS[0]]:.2f} s; selector loop "
            f"{wall[METHODS[2]]:.2f} s and asyncio {wall[METHODS[3]]:.2f} s on one thread; "
            f"{threaded['threads']} threads {wall[METHODS[1]]:.2f} s (server delay "
            f"{delay:.2f} s)"
        ),
    )


def _chart(ctx: DemoContext, runs: list[_Run], delay: float) -> str | None:
    def draw(axes: list[Axes]) -> None:
        left, right = axes
        for done in runs:
            finished = sorted(done.finished_s)
            left.step(finished, range(1, len(finished) + 1), where="post", label=done.method)
        left.set_xlabel("seconds since the first request")
        left.set_ylabel("requests answered")
        left.set_title(f"N requests to a server that waits {delay * 1000:.0f} ms", fontsize=10)
        left.grid(True, alpha=0.3)
        left.legend(fontsize=7)
        charts.bars(
            right,
            [done.method for done in runs],
            [float(len(done.threads)) for done in runs],
            title="client threads used",
            ylabel="threads",
        )

    return ctx.draw_chart(NAME, "poollab demo selectors: one thread, many sockets", draw, panels=2)
