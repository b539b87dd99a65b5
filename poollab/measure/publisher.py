"""How fast jobs can be published: the lab's publisher against Celery's ``send_task``.

Both publish noop jobs to the same queue of a Redis of their own (started here, nothing
else on it) in one run, one after the other, ``--rounds`` times each, alternating; a rate is
jobs over the wall-clock time of :func:`poollab.producer.publish.publish` (the lab's:
messages built from a template, LPUSHed ``--batch`` per pipeline) or of
:func:`~poollab.producer.publish.publish_with_send_task` (``send_task`` per job on one
connection), the best round of each. Without ``--remember`` neither records issued ids (as
the bench and the soak publish); with it both do, as ``POST /jobs`` does. No consumer runs:
the queue is emptied between rounds.

``python -m poollab.measure.publisher [--jobs N] [--celery-jobs N] [--rounds N]`` prints
one JSON object: both rates, their ratio, and the settings of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from poollab.celery_config import make_client
from poollab.launcher.redis_server import RedisServer
from poollab.producer.publish import BATCH, publish, publish_with_send_task
from poollab.settings import Settings

QUEUE = "solo"


def _rate(run: Callable[[], list[str]], flush: Callable[[], object]) -> float:
    flush()
    started = time.perf_counter()
    ids = run()
    elapsed = time.perf_counter() - started
    flush()
    return len(ids) / elapsed


def measure(jobs: int, celery_jobs: int, rounds: int, batch: int, remember: bool) -> dict[str, Any]:
    with RedisServer() as server:
        url = server.url + "/0"
        app = make_client("publisher-bench", Settings(broker_url=url))
        r = redis.Redis.from_url(url)
        try:
            lab: list[float] = []
            celery: list[float] = []
            for _ in range(rounds):
                celery.append(
                    _rate(
                        lambda: publish_with_send_task(
                            app, QUEUE, "noop", {}, celery_jobs, remember=remember
                        ),
                        r.flushdb,
                    )
                )
                lab.append(
                    _rate(
                        lambda: publish(
                            app, QUEUE, "noop", {}, jobs, remember=remember, batch=batch
                        ),
                        r.flushdb,
                    )
                )
        finally:
            r.close()
            app.close()
    return {
        "publisher_jobs_per_s": round(max(lab)),
        "send_task_jobs_per_s": round(max(celery)),
        "ratio": round(max(lab) / max(celery), 1),
        "publisher_rounds": [round(x) for x in lab],
        "send_task_rounds": [round(x) for x in celery],
        "jobs": jobs,
        "send_task_jobs": celery_jobs,
        "batch": batch,
        "remember": remember,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poollab.measure.publisher")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs per publisher round")
    parser.add_argument("--celery-jobs", type=int, default=5_000, help="jobs per send_task round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=BATCH, help="jobs per pipeline")
    parser.add_argument(
        "--remember", action="store_true", help="record issued ids, as POST /jobs does"
    )
    args = parser.parse_args(argv)
    result = measure(args.jobs, args.celery_jobs, args.rounds, args.batch, args.remember)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
