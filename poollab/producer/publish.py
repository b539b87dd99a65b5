"""Validating a job request and publishing it, shared by the HTTP API and ``poollab submit``.

The producer never imports worker code: it publishes ``poollab.<kind>`` by name, in the
message ``send_task`` would write (:func:`publish`), and stamps the time of publishing into
the message's headers. A user job (kind ``user``) is published as its task
``poollab.user.<module>.<function>`` only if its ``task`` is one the producer registered
itself from ``POOLLAB_JOBS`` at start-up: a name in a request is looked up, never imported.
"""

from __future__ import annotations

import inspect
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlparse

import redis
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from poollab import jobs, userjobs
from poollab.consumer import layout, protocol
from poollab.measure.collect import collect
from poollab.settings import ALL_POOLS, Settings

Kind = Literal["noop", "sleep", "cpu", "io", "mixed", "user"]
Pool = Literal["prefork", "threads", "gevent", "solo", "asyncio"]
assert set(Kind.__args__) == {*jobs.KINDS, userjobs.USER_KIND}  # type: ignore[attr-defined]
assert set(Pool.__args__) == set(ALL_POOLS)  # type: ignore[attr-defined]


class JobRequest(BaseModel):
    """``POST /jobs``: ``count`` jobs of one kind with the same params, for one pool."""

    # strict: true, "3" and 3.0 are not counts (found by the fuzz); the params of every kind
    # are as strict (poollab.jobs)
    model_config = ConfigDict(extra="forbid", strict=True)

    pool: Pool
    kind: Kind
    # kind "user": MODULE:FUNCTION of a job registered from POOLLAB_JOBS
    task: str | None = Field(None, max_length=500)
    params: dict[str, Any] = Field(default_factory=dict)
    count: int = Field(1, ge=1)

    @property
    def task_name(self) -> str | None:
        """A user job's task name, for :func:`publish`'s ``task``; None for the other kinds."""
        if self.kind != userjobs.USER_KIND or self.task is None:
            return None
        module, function = userjobs.parse_spec(self.task)
        return f"{userjobs.USER_TASK_PREFIX}{module}.{function}"


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


def parse_request(
    payload: Any, settings: Settings, user_jobs: Mapping[str, userjobs.UserJob] | None = None
) -> tuple[JobRequest, dict[str, Any]]:
    """Check everything before anything is published; return the request and clean params.

    Every bad field is reported at once, in this order: the request's own fields, ``count``
    against its cap, then the kind's params, which are checked whenever the kind is known,
    even when another field is wrong. Numbers are strict: ``true`` and ``"3"`` are not ints.
    ``user_jobs``: the registered user jobs by MODULE:FUNCTION (none if not given).
    """
    errors: list[FieldError] = []
    request: JobRequest | None = None
    try:
        request = JobRequest.model_validate(payload)
    except ValidationError as exc:
        errors.extend(_field_errors(exc))
    raw: dict[str, Any] = payload if isinstance(payload, dict) else {}
    count = request.count if request else raw.get("count")
    if type(count) is int and count > settings.max_count:
        errors.append(FieldError(field="count", message=f"at most {settings.max_count}"))
    kind = request.kind if request else raw.get("kind")
    raw_params = request.params if request else raw.get("params", {})
    task = request.task if request else raw.get("task")
    if kind == userjobs.USER_KIND:
        user = _check_user(task, raw_params, user_jobs or {}, errors)
        if errors or request is None or user is None:
            raise RequestInvalid(errors)
        return request, dict(request.params)
    if task is not None:
        errors.append(FieldError(field="task", message="only for kind user"))
    params: BaseModel | None = None
    if isinstance(kind, str) and kind in jobs.CATALOGUE and isinstance(raw_params, dict):
        params = _check_params(jobs.CATALOGUE[kind].params, raw_params, settings, errors)
    if errors or request is None or params is None:
        raise RequestInvalid(errors)
    return request, params.model_dump(exclude_defaults=True)


def _check_user(
    task: Any,
    raw_params: Any,
    user_jobs: Mapping[str, userjobs.UserJob],
    errors: list[FieldError],
) -> userjobs.UserJob | None:
    """The registered job ``task`` names, or None with what is wrong added to ``errors``.

    Only looked up in ``user_jobs``: an unknown name is refused, never imported.
    """
    if task is None:
        errors.append(FieldError(field="task", message="required for kind user: MODULE:FUNCTION"))
        return None
    job = user_jobs.get(task) if isinstance(task, str) else None
    if job is None:
        if isinstance(task, str):
            known = ", ".join(sorted(user_jobs)[:20]) or "none (POOLLAB_JOBS is empty)"
            errors.append(
                FieldError(field="task", message=f"not a registered job; registered: {known}")
            )
        return None
    if not isinstance(raw_params, dict):
        return None
    try:
        signature: inspect.Signature | None = inspect.signature(job.fn)
    except (TypeError, ValueError):  # some callables have none: the consumer will tell
        signature = None
    if signature is not None:
        try:
            signature.bind(**raw_params)
        except TypeError as exc:
            errors.append(FieldError(field="params", message=f"{job.spec}{signature}: {exc}"))
            return None
    return job


def _check_params(
    model: type[BaseModel], raw: dict[str, Any], settings: Settings, errors: list[FieldError]
) -> BaseModel | None:
    """The kind's params, or None with every bad one added to ``errors`` (caps included)."""
    params: BaseModel | None = None
    try:
        params = model.model_validate(raw)
    except ValidationError as exc:
        errors.extend(_field_errors(exc, prefix="params."))
    named = {error.field for error in errors}
    for name, cap in (("ms", settings.max_ms), ("n", settings.max_cpu_n)):
        value, field = raw.get(name), f"params.{name}"
        # the producer's own caps, below the catalogue's: checked also when another
        # param is wrong, and not twice for a value the model refused already
        known = name in model.model_fields and field not in named
        if known and type(value) is int and value > cap:
            errors.append(FieldError(field=field, message=f"at most {cap}"))
            params = None
    return params


# every id publish() hands out is remembered under this prefix for as long as a result is
# kept (result_expires), so that GET /jobs/{id} tells an id never issued (404) from a job
# not finished yet (200 PENDING)
ISSUED_PREFIX = "poollab:issued:"


class UnknownJob(LookupError):
    """No job of this id was issued here, or its record expired with the results."""


def issued_key(task_id: str) -> str:
    return ISSUED_PREFIX + task_id


def remember_issued(app: Celery, ids: list[str]) -> None:
    """Record ids as issued, expiring with the results: one pipeline, one round trip in all.

    Written to the result store (where ``GET /jobs/{id}`` reads) before the jobs are
    published, so that a job a client was told about is always known. Used by
    :func:`publish` when the result store is not the broker's Redis (else the records go in
    the pipelines that publish the jobs, ahead of their LPUSH: no round trip of their own).
    The cost: one round trip per request, whatever its ``count``, and ~150 bytes of Redis
    memory per job for ``result_expires`` seconds.
    """
    if not ids:
        return
    expires = int(app.backend.expires or 0) or None
    try:
        with app.backend.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.set(issued_key(task_id), 1, ex=expires)
            pipe.execute()
    except (RedisError, OSError) as exc:
        raise BrokerUnavailable(f"result store unavailable: {exc}", []) from exc


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


# jobs per pipeline: one round trip, one LPUSH of them all, and their issued-ids records
BATCH = 500

_BROKER_CLIENTS: weakref.WeakKeyDictionary[Celery, redis.Redis] = weakref.WeakKeyDictionary()


def broker_client(app: Celery) -> redis.Redis | None:
    """A redis-py client of the app's broker (one per app), or None if it is not Redis.

    A connection that cannot be made fails within ``broker_connection_timeout``, as kombu's
    does, so that a producer answers 503 rather than hang while Redis is down.
    """
    url = str(app.conf.broker_url or "")
    if urlparse(url).scheme not in ("redis", "rediss"):
        return None
    client = _BROKER_CLIENTS.get(app)
    if client is None:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=float(app.conf.broker_connection_timeout or 2.0),
            socket_keepalive=True,
            # no retry: a pipeline resent after its connection dropped may have run already,
            # and its jobs would be queued twice (send_task is called with retry=False too).
            # A connection the server closed is replaced when taken from the pool.
            retry=Retry(NoBackoff(), 0),
        )
        _BROKER_CLIENTS[app] = client
    return client


def _result_store_is_broker(app: Celery) -> bool:
    backend = str(app.conf.result_backend or "")
    return backend == str(app.conf.broker_url or "")


def publish(
    app: Celery,
    pool: str,
    kind: str,
    params: dict[str, Any],
    count: int,
    confirm_ms: int = 0,
    *,
    remember: bool = True,
    priority: int | None = None,
    batch: int = BATCH,
    task: str | None = None,
) -> list[str]:
    """Publish ``count`` jobs; a broker failure raises BrokerUnavailable.

    ``task``: the task name, for a kind outside the catalogue (a user job's
    ``poollab.user.<module>.<function>``); default the catalogue kind's.

    Each message is laid out as ``send_task`` lays it out
    (:class:`poollab.consumer.protocol.MessageTemplate`) and LPUSHed to the list kombu's
    Redis transport would push it to, ``batch`` jobs per pipeline: one round trip and one
    LPUSH per batch, ~40x less CPU a job than ``send_task`` (``python -m
    poollab.measure.publisher``). A broker that is not Redis gets :func:`publish_with_send_task`.

    ``confirm_ms`` > 0: return only once Redis confirmed them fsynced to its append-only
    file (:func:`confirm_on_disk`), else raise :class:`NotDurable`. ``remember``: record the
    ids as issued, for ``GET /jobs/{id}``, before their jobs are published (in the same
    pipelines when the result store is the broker's Redis, else first, in one pipeline of
    the result store: :func:`remember_issued`); the bench and the soak, which read results
    by key themselves, leave it out. ``BrokerUnavailable.published`` holds the ids of the
    batches Redis answered.
    """
    client = broker_client(app)
    if client is None:
        return publish_with_send_task(
            app, pool, kind, params, count, confirm_ms, remember=remember, priority=priority,
            task=task,
        )  # fmt: skip
    template = protocol.MessageTemplate(
        task or jobs.CATALOGUE[kind].task_name,
        params,
        queue=pool,
        priority=priority or 0,
        reply_to=app.thread_oid,
    )
    ids = [str(uuid.uuid4()) for _ in range(count)]
    remember_here = remember and _result_store_is_broker(app)
    if remember and not remember_here:
        remember_issued(app, ids)
    expires = int(app.backend.expires or 0) or None if remember_here else None
    render, now, key = template.render, time.time, template.key
    published: list[str] = []
    try:
        for first in range(0, count, batch):
            chunk = ids[first : first + batch]
            with client.pipeline(transaction=False) as pipe:
                if first == 0:
                    # the queue's binding, as send_task declares it on its way (a worker
                    # of the queue declares it too)
                    member = layout.binding_member(pool)
                    pipe.sadd(layout.BINDING % pool, member)
                    pipe.sadd(layout.BINDING_PERMANENT % pool, member)
                if remember_here:
                    for task_id in chunk:
                        pipe.set(issued_key(task_id), 1, ex=expires)
                pipe.lpush(key, *[render(task_id, now()) for task_id in chunk])
                pipe.execute()
            published.extend(chunk)
    except (RedisError, OSError) as exc:
        raise BrokerUnavailable(f"broker unavailable: {exc}", published) from exc
    if confirm_ms > 0:
        confirm_on_disk(client, confirm_ms, published)
    return published


def publish_with_send_task(
    app: Celery,
    pool: str,
    kind: str,
    params: dict[str, Any],
    count: int,
    confirm_ms: int = 0,
    *,
    remember: bool = True,
    priority: int | None = None,
    task: str | None = None,
) -> list[str]:
    """:func:`publish` by Celery's own ``send_task``, one job at a time on one connection.

    What the lab did before :func:`publish` wrote messages itself: kept for a broker that
    is not Redis, and as the yardstick of ``python -m poollab.measure.publisher``.
    """
    task_name = task or jobs.CATALOGUE[kind].task_name
    ids = [str(uuid.uuid4()) for _ in range(count)]
    if remember:
        remember_issued(app, ids)
    published: list[str] = []
    options: dict[str, Any] = {} if priority is None else {"priority": priority}
    try:
        with app.producer_or_acquire() as producer:
            for task_id in ids:
                app.send_task(
                    task_name,
                    kwargs=params,
                    queue=pool,
                    task_id=task_id,
                    headers={jobs.SENT_HEADER: time.time()},
                    producer=producer,
                    retry=False,
                    **options,
                )
                published.append(task_id)
            if confirm_ms > 0:
                confirm_on_disk(producer.channel.client, confirm_ms, published)
    except (OperationalError, OSError) as exc:
        raise BrokerUnavailable(f"broker unavailable: {exc}", published) from exc
    return published


def job_state(app: Celery, task_id: str) -> dict[str, Any]:
    """A job's state, its value and its timings, as ``GET /jobs/{id}`` returns them.

    Raises :class:`UnknownJob` for an id with no result that was never issued (or whose
    record expired): a second read, only for a job still ``PENDING``.
    """
    result = AsyncResult(task_id, app=app)
    state = result.state
    if state == "PENDING" and not app.backend.client.exists(issued_key(task_id)):
        raise UnknownJob(task_id)
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
