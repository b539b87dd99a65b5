"""The benchmark's own pieces, without running a benchmark."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from poollab.consumer import protocol
from poollab.measure.bench.profiles import get_profile
from poollab.measure.peers import peers_venv
from poollab.measure.peers.cli import Case, ratios, table
from poollab.measure.peers.publish import bare_message, celery_message
from poollab.measure.peers.systems import SYSTEMS, Context

ROOT = Path(__file__).resolve().parents[3]


def test_peer_pins_are_the_peers_extra_plus_the_projects_aiohttp() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = peers_venv.pins()
    assert pins[: len(project["optional-dependencies"]["peers"])] == list(
        project["optional-dependencies"]["peers"]
    )
    aiohttp = [p for p in project["dependencies"] if p.startswith("aiohttp")]
    assert [p for p in pins if p.startswith("aiohttp")] == aiohttp
    assert not any(p.startswith(("celery", "kombu", "poollab")) for p in pins)


def test_benchmark_messages_are_what_the_consumer_reads() -> None:
    message = protocol.parse(celery_message("asyncio", "run", 7, "io", 50))
    assert message.task == "poollab.io" and message.kwargs == {"ms": 50}
    assert message.task_id == "bench-run-0000007"
    bare = json.loads(bare_message("bare:bench", "run", 7, "noop", 50))
    assert bare["id"] == "bench-run-0000007" and bare["kind"] == "noop"


def test_every_system_has_a_worker_command() -> None:
    ctx = Context("/venv/bin/python", Path("/peers/bin/python"), 500, True)
    for system in SYSTEMS.values():
        argv = system.argv(ctx)
        # arq and the bare loop read their concurrency from BENCH_CONCURRENCY
        assert argv and ("500" in argv or system.name in {"arq", "bare-loop"})
    gevent = SYSTEMS["celery-gevent"].argv(ctx)
    assert "-E" in gevent
    # Celery's workers run on the tuned profile: one result backend per process, no mingle
    assert "result_backend_thread_safe=(bool)true" in gevent[gevent.index("--") :]
    tuned = get_profile("tuned")
    assert " ".join(tuned.options_for("gevent")) in " ".join(gevent)
    aio = SYSTEMS["celery-aio-pool"]
    assert aio.argv(ctx)[aio.argv(ctx).index("-P") + 1] == "custom"
    assert aio.env == {"CELERY_CUSTOM_WORKER_POOL": "celery_aio_pool.pool:AsyncIOPool"}
    assert SYSTEMS["taskiq"].argv(ctx)[0] == "/peers/bin/taskiq"


def test_report_states_ratios_to_the_peers() -> None:
    cases = [
        Case("consumer-uvloop", "noop", "drain", 100, completed=100, rate=6000.0),
        Case("taskiq", "noop", "drain", 100, completed=100, rate=2000.0),
        Case("bare-loop", "noop", "drain", 100, completed=100, rate=8000.0),
    ]
    text = table(cases, ["consumer-uvloop", "taskiq", "bare-loop"])
    assert "| consumer-uvloop | 6,000 |" in text
    assert ratios(cases) == ["- noop drain: consumer-uvloop 6,000/s, 3.00x taskiq, 0.75x bare-loop"]
