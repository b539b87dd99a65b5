"""gevent: blocking socket code in greenlets, without and with monkey-patching.

Both variants run in fresh child interpreters: monkey-patching is process-wide and permanent,
so it must never happen in the process that runs the demos (or the tests).
"""

from __future__ import annotations

import sys
from typing import Any

from matplotlib.axes import Axes

from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Row, Verdict, ratio, verdict_from
from poollab.demo.slow_server import SlowEchoServer
from poollab.demo.subproc import run_child

NAME = "gevent-patch"
CLAIM = (
    "gevent makes blocking libraries cooperative by monkey-patching: unpatched, greenlets doing "
    "blocking socket I/O run one after another (the run takes the sum of their waits); patched, "
    "they overlap (all of them done within 3 server delays)."
)
TALK = "monkey.patch_all() turns blocking socket calls into cooperative ones: greenlets overlap"
# the patched run must finish within this many server delays to count as overlapping: all the
# greenlets wait at once, so the run takes about one delay however many there are
OVERLAP_DELAYS = 3
# the unpatched run must take at least this share of the serial sum to count as serialised (one
# after another it cannot take less than the sum; the share allows for timer granularity)
SERIAL_SHARE = 0.95


def run(ctx: DemoContext) -> DemoResult:
    greenlets = ctx.pick(10, 40)
    delay = 0.1
    timeout = greenlets * delay + 10
    answers: dict[str, dict[str, Any]] = {}
    with (
        SlowEchoServer(delay) as server,
        ctx.progress.task("gevent-patch: fresh interpreters", total=2) as advance,
    ):
        for mode in ("unpatched", "patched"):
            args = ["--port", str(server.port), "--greenlets", str(greenlets)]
            args += ["--timeout", str(timeout)] + (["--patch"] if mode == "patched" else [])
            answers[mode] = run_child("gevent_child.py", args, timeout=timeout + 30)
            advance(1)
    serial = greenlets * delay
    rows: list[Row] = [
        {
            "mode": mode,
            "socket_patched": bool(answer["socket_patched"]),
            "greenlets": greenlets,
            "server_delay_ms": round(delay * 1000),
            "wall_s": round(float(answer["wall_s"]), 3),
            "serial_s": round(serial, 3),
            "overlap_x": round(ratio(serial, float(answer["wall_s"])), 1),
            "ok": int(answer["ok"]),
        }
        for mode, answer in answers.items()
    ]
    errors = [e for answer in answers.values() for e in answer["errors"]]
    verdict, reason = _verdict(rows, serial, delay)
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=[
            "mode",
            "socket_patched",
            "greenlets",
            "server_delay_ms",
            "wall_s",
            "serial_s",
            "overlap_x",
            "ok",
        ],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary={
            "unpatched_s": rows[0]["wall_s"],
            "patched_s": rows[1]["wall_s"],
            "speedup": round(
                ratio(float(rows[0]["wall_s"] or 0), float(rows[1]["wall_s"] or 0)), 1
            ),
            "this_process_patched": _this_process_patched(),
        },
        notes=[
            "each greenlet opens a plain socket to a loopback server that answers after "
            f"{delay * 1000:.0f} ms; serial_s = greenlets x delay",
            "both runs in fresh interpreters; this process was never patched",
            f"held means: unpatched at least {SERIAL_SHARE:.0%} of serial_s, patched within "
            f"{OVERLAP_DELAYS} server delays ({OVERLAP_DELAYS * delay:.2f} s)",
            *(f"error: {e}" for e in errors[:3]),
        ],
        chart=_chart(ctx, answers),
        quick=ctx.quick,
    )


def _this_process_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))


def _verdict(rows: list[Row], serial: float, delay: float) -> tuple[Verdict, str]:
    unpatched, patched = rows
    slow = float(unpatched["wall_s"] or 0)
    fast = float(patched["wall_s"] or 0)
    failures = []
    if unpatched["ok"] != unpatched["greenlets"] or patched["ok"] != patched["greenlets"]:
        failures.append("not every request completed")
    if not patched["socket_patched"] or unpatched["socket_patched"]:
        failures.append("the patch state was not as intended")
    if slow < SERIAL_SHARE * serial:
        failures.append(f"unpatched greenlets overlapped ({slow:.2f} s for {serial:.2f} s serial)")
    if fast >= OVERLAP_DELAYS * delay:
        failures.append(
            f"patched greenlets did not overlap ({fast:.2f} s, not within {OVERLAP_DELAYS} "
            f"delays of {delay:.2f} s; unpatched {slow:.2f} s)"
        )
    return verdict_from(
        failures,
        lambda: (
            f"unpatched {slow:.2f} s (one after another: {serial:.2f} s serial); patched "
            f"{fast:.2f} s, {ratio(slow, fast):.0f}x faster"
        ),
    )


def _chart(ctx: DemoContext, answers: dict[str, dict[str, Any]]) -> str | None:
    def draw(axes: list[Axes]) -> None:
        (ax,) = axes
        for mode, answer in answers.items():
            finished = [float(t) for t in answer["finished_s"]]
            ax.step(finished, range(1, len(finished) + 1), where="post", label=mode)
        ax.set_xlabel("seconds since the greenlets were spawned")
        ax.set_ylabel("requests completed")
        ax.set_title("blocking sockets in greenlets", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)

    return ctx.draw_chart(
        NAME, "poollab demo gevent-patch: monkey-patching", draw, width_per_panel=7
    )
