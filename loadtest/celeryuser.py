"""A Locust user that sends jobs straight to the broker by task name, skipping the HTTP hop.

The pattern of locust's examples/custom_xmlrpc_client: a client wraps the calls and fires
``environment.events.request`` once per call, so Locust's statistics show them like HTTP
requests. Here one call is one job: sent with ``send_task`` (no worker code is imported,
the task is named ``poollab.<kind>``, or ``poollab.user.<module>.<function>`` for a user
job) and finished when its result is in the backend.

Locust runs every user in a greenlet with the standard library monkey-patched, so the
result is polled (a GET of the result key, then ``gevent.sleep``) rather than waited for
with ``AsyncResult.get()``, which would block on a pub/sub socket; every wait is bounded.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gevent
from celery import Celery
from celery import states as celery_states
from loadmix import Job
from locust import User
from locust.env import Environment

from poollab import jobs
from poollab.celery_config import make_client
from poollab.settings import lab_client_settings

REQUEST_TYPE = "celery"


class JobFailed(Exception):
    """The job ran and failed (the worker stored an exception)."""


class JobTimeout(Exception):
    """No result within the user's bounded wait."""


@dataclass
class Sent:
    """A job that went out: its id and the pool (queue) it went to."""

    id: str
    pool: str


@lru_cache(maxsize=1)
def shared_app() -> Celery:
    """One Celery client per Locust process: the app, its pools and connections are shared.

    The broker and backend come from POOLLAB_BROKER_URL / POOLLAB_RESULT_BACKEND, as for
    every other client of the lab, or else from the `poollab up` running here: never from a
    Redis that merely answers on the default port.
    """
    return make_client("poollab-locust", lab_client_settings())


def poll_interval(elapsed_s: float) -> float:
    """Seconds to sleep between two reads of a result key.

    A tenth of the time waited so far, between 5 ms and 100 ms: the latency measured is at
    most ~10 % late, and a long job is not read hundreds of times.
    """
    return min(0.1, max(0.005, elapsed_s / 10))


class CeleryJobClient:
    """Sends a job by name and waits for its result, reporting one request per job."""

    def __init__(self, app: Celery, environment: Environment, timeout_s: float) -> None:
        self.app = app
        self.request_event = environment.events.request
        self.timeout_s = timeout_s
        # Celery keeps its result backend per thread, which under gevent is per greenlet:
        # fetched once in this user's greenlet, it is this user's (one Redis connection)
        self._backend: Any = None

    def send(self, job: Job) -> Sent:
        task_id = str(uuid.uuid4())
        self.app.send_task(
            job.task_name,
            kwargs=job.params,
            queue=job.pool,
            task_id=task_id,
            # the producer's stamp, so the workers' queue-wait figure means the same here
            headers={jobs.SENT_HEADER: time.time()},
            retry=False,
        )
        return Sent(task_id, job.pool)

    def wait(self, sent: Sent, started: float) -> dict[str, Any]:
        if self._backend is None:
            self._backend = self.app.backend
        deadline = started + self.timeout_s
        while True:
            meta: dict[str, Any] = self._backend.get_task_meta(sent.id)
            state = meta.get("status")
            if state == celery_states.SUCCESS:
                return meta
            if state in celery_states.PROPAGATE_STATES:
                raise JobFailed(f"{state}: {meta.get('result')!r}")
            now = time.perf_counter()
            if now >= deadline:
                raise JobTimeout(f"no result for {sent.id} after {self.timeout_s:.0f} s")
            gevent.sleep(min(poll_interval(now - started), deadline - now))

    def run(self, job: Job) -> tuple[str | None, Exception | None]:
        """Send one job and wait for it; fire one request event named ``pool:kind``.

        Returns the job's id (None if it was not sent) and what went wrong, if anything.
        """
        start_time = time.time()
        started = time.perf_counter()
        sent: Sent | None = None
        meta: dict[str, Any] | None = None
        exception: Exception | None = None
        try:
            sent = self.send(job)
            meta = self.wait(sent, started)
        except Exception as exc:  # every failure is a failed request, never a dead user
            exception = exc
        result = meta.get("result") if meta else None
        self.request_event.fire(  # type: ignore[no-untyped-call]
            request_type=REQUEST_TYPE,
            name=job.name,
            start_time=start_time,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(repr(result)) if result is not None else 0,
            response=result,
            context={"pool": job.pool, "kind": job.kind},
            exception=exception,
        )
        return (sent.id if sent else None), exception


class CeleryUser(User):
    """Base for users whose client talks to the broker; concrete users add the tasks."""

    abstract = True
    job_timeout_s = 30.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client = CeleryJobClient(shared_app(), environment, self.job_timeout_s)
