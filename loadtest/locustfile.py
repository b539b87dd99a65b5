"""Pool Lab's load: the same jobs through every pool, one row per pool and kind.

Two users, selectable by class name or by tag:

* ``HttpJobUser`` (tag ``http``) posts a job to the producer API and polls
  ``GET /jobs/{id}`` until it is done: its response time is the job's end-to-end latency
  as a client of the API sees it.
* ``CeleryJobUser`` (tag ``celery``) sends the same job by task name straight to the broker
  and polls the result backend: the same latency without the HTTP hop.

Each request is named ``pool:kind`` (type ``http`` or ``celery``), so Locust's table compares
the pools directly. The mix, kinds, parameters and load shape are options::

    locust -f loadtest/locustfile.py --headless -u 10 -r 5 -t 20s \\
        --host http://127.0.0.1:8000 --load-pools prefork,gevent:2 --load-kinds io \\
        --load-params '{"io": {"ms": 20}}' --load-shape step --step-users 5 --step-time 10

The user's own registered jobs: ``--load-kinds user:mypkg.tasks:resize --load-user-params
'{"size": 10}'`` (the lab started with ``POOLLAB_JOBS=mypkg.tasks``).

(or the ``POOLLAB_LOAD_*`` variables; ``locust --help`` lists them under "Pool Lab").
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
import loadmix
from celeryuser import REQUEST_TYPE, CeleryUser, JobFailed, JobTimeout, poll_interval
from locust import FastHttpUser, LoadTestShape, constant, events, tag, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.event import EventHook
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

logger = logging.getLogger("poollab.load")

_ids = loadmix.IdsFile("")
_environment: Environment | None = None


# locust's event hooks are untyped, hence the ignores on them
@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _add_options(parser: LocustArgumentParser) -> None:
    loadmix.add_arguments(parser)


@events.init.add_listener  # type: ignore[untyped-decorator]
def _check_options(environment: Environment, **_: Any) -> None:
    """Refuse a bad mix at start, with the reason, instead of failing every request."""
    global _environment
    _environment = environment
    options = environment.parsed_options
    if options is None or getattr(options, "worker", False):
        return  # a worker gets its options from the master, which checked them
    try:
        loadmix.mix_from_options(options)
    except loadmix.MixError as exc:
        logger.error("poollab load options: %s", exc)
        raise SystemExit(2) from None


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _close_ids(**_: Any) -> None:
    _ids.close()


@events.quit.add_listener  # type: ignore[untyped-decorator]
def _final_csv(**_: Any) -> None:
    """Write the CSV statistics once more, after the graceful stop.

    Locust rewrites ``*_stats.csv`` every second while it runs but not after its users'
    --stop-timeout: the jobs that finish in that last stretch are in the final summary on
    the terminal and in the HTML report, not in the CSV (locust issues #1806, #2299). The
    quit event fires after the stop and before the files are closed.
    """
    environment = _environment
    options = environment.parsed_options if environment else None
    if environment is None or options is None or not options.csv_prefix:
        return
    if getattr(options, "worker", False):
        return  # a worker writes no CSV; its master does
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for suffix, write in (("stats", writer.requests_csv), ("failures", writer.failures_csv)):
        target = Path(f"{options.csv_prefix}_{suffix}.csv")
        partial = target.with_suffix(".csv.partial")
        with partial.open("w", newline="") as handle:
            write(csv.writer(handle))
        # a new file in its place: Locust's own open handle keeps the old one
        os.replace(partial, target)


def _mix(environment: Environment) -> loadmix.Mix:
    options = environment.parsed_options
    if options is None:
        return loadmix.build_mix(
            loadmix.default_pools(), loadmix.DEFAULT_KINDS, "", loadmix.DEFAULT_JOB_TIMEOUT_S
        )
    # a worker learns the options from its master, so the file is set when users start
    _ids.path = getattr(options, "load_ids_file", "") or ""
    return loadmix.mix_from_options(options)


class HttpJobUser(FastHttpUser):
    """One job at a time through the producer API; reports the job, not each HTTP call."""

    wait_time = constant(0)
    # each class numbers its users, so that either one alone spreads over every pool
    _numbers = itertools.count()
    network_timeout = 10.0
    connection_timeout = 5.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        # The POST and the polling GETs go to a hook of this user's own instead of to
        # Locust's statistics: the row a user reads is one per job (pool:kind), whose time
        # is the whole job, not a mixture of API calls and an arbitrary number of polls.
        self._calls = EventHook()  # type: ignore[no-untyped-call]
        self._call_errors: list[BaseException] = []
        self._calls.add_listener(self._on_call)  # type: ignore[no-untyped-call]
        self.client.request_event = self._calls

    def _on_call(self, exception: BaseException | None = None, **_: Any) -> None:
        if exception is not None:
            self._call_errors.append(exception)

    def on_start(self) -> None:
        mix = _mix(self.environment)
        self.timeout_s = mix.timeout_s
        self.turns = mix.for_user(next(self._numbers))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self._call_errors.clear()
        response = self.client.request(method, path, **kwargs)
        if self._call_errors:
            raise self._call_errors[0]
        return response.json()

    def run_job(self, job: loadmix.Job) -> None:
        start_time = time.time()
        started = time.perf_counter()
        deadline = started + self.timeout_s
        exception: Exception | None = None
        body: dict[str, Any] = {}
        job_id: str | None = None
        try:
            posted = self._call("POST", "/jobs", json=job.request_body())
            (job_id,) = posted["ids"]
            while True:
                body = self._call("GET", f"/jobs/{job_id}")
                if body["state"] == "SUCCESS":
                    break
                if body["state"] in ("FAILURE", "REVOKED"):
                    raise JobFailed(f"{body['state']}: {body.get('error')}")
                now = time.perf_counter()
                if now >= deadline:
                    raise JobTimeout(f"no result for {job_id} after {self.timeout_s:.0f} s")
                gevent.sleep(min(poll_interval(now - started), deadline - now))
        except Exception as exc:  # every failure is a failed request, never a dead user
            exception = exc
        self.environment.events.request.fire(
            request_type="http",
            name=job.name,
            start_time=start_time,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(repr(body.get("result"))) if body else 0,
            response=body,
            context={"pool": job.pool, "kind": job.kind},
            exception=exception,
        )
        _ids.record("http", job, job_id, exception is not None)

    @tag("http")
    @task
    def job(self) -> None:
        self.run_job(next(self.turns))


class CeleryJobUser(CeleryUser):
    """One job at a time sent by task name to the pool's queue; no HTTP, no producer."""

    wait_time = constant(0)
    _numbers = itertools.count()
    via = REQUEST_TYPE

    def on_start(self) -> None:
        mix = _mix(self.environment)
        self.client.timeout_s = mix.timeout_s
        self.turns = mix.for_user(next(self._numbers))

    @tag("celery")
    @task
    def job(self) -> None:
        job = next(self.turns)
        job_id, exception = self.client.run(job)
        _ids.record(CeleryJobUser.via, job, job_id, exception is not None)


class PoolLabShape(LoadTestShape):
    """``--load-shape constant`` (-u users until -t) or ``step`` (a ramp to saturation).

    One shape class whose behaviour is an option, because Locust always uses a shape class
    a locustfile defines; ``use_common_options`` keeps -u, -r and -t working.
    """

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        run_time = float(options.run_time) if options and options.run_time else None
        elapsed: float = self.get_run_time()  # type: ignore[no-untyped-call]
        if options is not None and options.load_shape == "step":
            return loadmix.step_tick(
                elapsed, options.step_users, options.step_time, options.step_max_users, run_time
            )
        users = int(options.num_users or 1) if options else 1
        rate = float(options.spawn_rate or users) if options else 1.0
        return loadmix.constant_tick(elapsed, users, rate, run_time)
