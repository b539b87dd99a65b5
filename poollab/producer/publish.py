"""Validating a job request and publishing it, shared by the HTTP API and ``poollab submit``.

The producer never imports worker code: it sends ``poollab.<kind>`` by name with
``send_task`` and stamps the time of publishing into the message's headers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError, ResponseError

from poollab import jobs
from poollab.measure.collect import collect
from poollab.settings import ALL_POOLS, Settings

Kind = Literal["noop", "sleep", "cpu", "io", "mixed"]
Pool = Literal["prefork", "threads", "gevent", "solo", "asyncio"]
assert set(Kind.__args__) == set(jobs.KINDS)  # type: ignore[attr-defined]
assert set(Pool.__args__) == set(ALL_POOLS)  # type: ignore[attr-defined]


class JobRequest(BaseModel):
    """``POST /jobs``: ``count`` jobs of one kind with the same params, for one pool."""

    model_config = ConfigDict(extra="forbid")

    pool: Pool
    kind: Kind
    params: dict[str, Any] = Field(default_factory=dict)
    # strict: true and "3" are not counts (found by the fuzz)
    count: int = Field(1, ge=1, strict=True)


class FieldError(BaseModel):
    field: str
    message: str


class RequestInvalid(Exception):
    """A request that names what is wrong with it, field by field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class BrokerUnavailable(Exception):
    def __init__(self, message: str, published: list[str]) -> None:
        super().__init__(message)
        self.published = published


def _field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    return [
        FieldError(
            field=prefix + (".".join(str(part) for part in err["loc"]) or "body"),
            message=err["msg"],
        )
        for err in exc.errors()
    ]


def parse_request(payload: Any, settings: Settings) -> tuple[JobRequest, dict[str, Any]]:
    """Check everything before anything is published; return the request and clean params."""
    try:
        request = JobRequest.model_validate(payload)
    except ValidationError as exc:
        raise RequestInvalid(_field_errors(exc)) from None
    errors: list[FieldError] = []
    if request.count > settings.max_count:
        errors.append(FieldError(field="count", message=f"at most {settings.max_count}"))
    kind = jobs.CATALOGUE[request.kind]
    try:
        params = kind.params.model_validate(request.params)
    except ValidationError as exc:
        errors.extend(_field_errors(exc, prefix="params."))
        raise RequestInvalid(errors) from None
    for name, cap in (("ms", settings.max_ms), ("n", settings.max_cpu_n)):
        value = getattr(params, name, None)
        if isinstance(value, int) and value > cap:
            errors.append(FieldError(field=f"params.{name}", message=f"at most {cap}"))
    if errors:
        raise RequestInvalid(errors)
    return request, params.model_dump(exclude_defaults=True)


class NotDurable(BrokerUnavailable):
    """Published, but Redis did not confirm the jobs are on disk (``publish_waitaof_ms``)."""


# written by every confirmation: WAITAOF waits for the connection's own last write, and this
# one, sent after every publish was answered, is later in the append-only file than all of them
CONFIRM_KEY = "poollab:publish-confirm"


def confirm_on_disk(client: Any, timeout_ms: int, published: list[str]) -> None:
    """Wait until Redis has fsynced everything written before to its append-only file.

    ``WAITAOF 1 0 timeout_ms`` (Redis >= 7.2, ``appendonly yes``) on the same connection as a
    write of its own, so it waits for a write later than every job published. Raises
    :class:`NotDurable` (the jobs are in Redis but not confirmed on disk) when the local
    fsync did not happen in time or the server cannot tell (older Redis, no AOF).
    """
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(CONFIRM_KEY)
            pipe.execute_command("WAITAOF", 1, 0, timeout_ms)
            _, (local, _replicas) = pipe.execute()
    except ResponseError as exc:  # no WAITAOF (Redis < 7.2), or appendonly off
        raise NotDurable(
            f"broker did not confirm the jobs on disk: WAITAOF failed ({exc}); it needs "
            "Redis >= 7.2 with appendonly yes, or set POOLLAB_PUBLISH_WAITAOF_MS=0",
            published,
        ) from exc
    except (RedisError, OSError) as exc:
        raise BrokerUnavailable(f"broker unavailable: {exc}", published) from exc
    if int(local) < 1:
        raise NotDurable(
            f"broker did not confirm the jobs on disk within {timeout_ms} ms", published
        )


def publish(
    app: Celery,
    pool: str,
    kind: str,
    params: dict[str, Any],
    count: int,
    confirm_ms: int = 0,
) -> list[str]:
    """Publish ``count`` jobs on one connection; a broker failure raises BrokerUnavailable.

    ``confirm_ms`` > 0: return only once Redis confirmed them fsynced to its append-only
    file (:func:`confirm_on_disk`), else raise :class:`NotDurable`.
    """
    task_name = jobs.CATALOGUE[kind].task_name
    published: list[str] = []
    try:
        with app.producer_or_acquire() as producer:
            for _ in range(count):
                task_id = str(uuid.uuid4())
                app.send_task(
                    task_name,
                    kwargs=params,
                    queue=pool,
                    task_id=task_id,
                    headers={jobs.SENT_HEADER: time.time()},
                    producer=producer,
                    retry=False,
                )
                published.append(task_id)
            if confirm_ms > 0:
                confirm_on_disk(producer.channel.client, confirm_ms, published)
    except (OperationalError, OSError) as exc:
        raise BrokerUnavailable(f"broker unavailable: {exc}", published) from exc
    return published


def job_state(app: Celery, task_id: str) -> dict[str, Any]:
    """A job's state, its value and its timings, as ``GET /jobs/{id}`` returns them."""
    result = AsyncResult(task_id, app=app)
    state = result.state
    body: dict[str, Any] = {"id": task_id, "state": state, "result": None, "timings": None}
    info = result.info
    if state == "SUCCESS" and isinstance(info, dict) and "timings" in info:
        body["result"] = info.get("value")
        body["timings"] = info["timings"]
        body["worker"] = {key: info.get(key) for key in ("pool", "hostname", "pid")}
    elif state == "SUCCESS":
        body["result"] = info
    elif isinstance(info, BaseException):
        body["error"] = {"type": type(info).__name__, "message": str(info)}
    return body


def is_job_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def wait_for(
    app: Celery,
    ids: list[str],
    timeout: float,
    on_result: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """The stored meta of each job, by id, once all are finished.

    Read by :func:`poollab.measure.collect.collect`; ``on_result(id, meta)`` is called as
    each one finishes. Raises celery's TimeoutError when they are not all finished within
    ``timeout`` seconds (the bench catches it and counts the missing ones as lost).
    """
    collected = collect(app.backend.client, ids, timeout, on_result=on_result)
    if collected.pending:
        raise CeleryTimeout(
            f"{len(collected.pending)} of {len(collected.metas) + len(collected.pending)} "
            f"jobs not finished within {timeout:g} s"
        )
    return collected.metas
