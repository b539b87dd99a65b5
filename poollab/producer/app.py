"""The producer's HTTP API (aiohttp): ``POST /jobs``, ``GET /jobs/{id}``, ``GET /healthz``.

Publishing and reading results are blocking Celery calls, so they run in a thread pool
owned by the app; a broker that is down answers 503 with ``Retry-After``. With
``POOLLAB_API_TOKEN`` set, every request but ``/healthz`` needs that bearer token.
The user jobs a request may name (kind ``user``) are the ones of ``POOLLAB_JOBS``, imported
once when the app is created.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from celery import Celery

from poollab import userjobs
from poollab.celery_config import make_client
from poollab.producer import openapi
from poollab.producer.publish import (
    BrokerUnavailable,
    FieldError,
    RequestInvalid,
    UnknownJob,
    is_job_id,
    job_state,
    parse_request,
    publish,
)
from poollab.settings import Settings, get_settings

SETTINGS_KEY = web.AppKey("settings", Settings)
CELERY_KEY = web.AppKey("celery", Celery)
EXECUTOR_KEY = web.AppKey("executor", ThreadPoolExecutor)
# the registered user jobs, by MODULE:FUNCTION
USER_JOBS_KEY = web.AppKey("user_jobs", dict[str, userjobs.UserJob])

RETRY_AFTER_S = 2
_T = TypeVar("_T")


def error_response(status: int, error: str, errors: list[FieldError]) -> web.Response:
    return web.json_response(
        {
            "error": error,
            "field": errors[0].field if errors else None,
            "errors": [e.model_dump() for e in errors],
        },
        status=status,
    )


def unavailable(message: str, **extra: Any) -> web.Response:
    return web.json_response(
        {"error": "broker unavailable", "detail": message, **extra},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _blocking(request: web.Request, func: Callable[..., _T], *args: Any) -> _T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR_KEY], func, *args)


async def post_jobs(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        # refused from the header alone: the body is never read
        return error_response(
            413,
            "body too large",
            [FieldError(field="body", message=f"at most {settings.max_body_bytes} bytes")],
        )
    try:
        payload = await request.json()
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            413,
            "body too large",
            [FieldError(field="body", message=f"at most {settings.max_body_bytes} bytes")],
        )
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error_response(
            400, "body is not JSON", [FieldError(field="body", message="expected a JSON object")]
        )
    try:
        job, params = parse_request(payload, settings, request.app[USER_JOBS_KEY])
    except RequestInvalid as exc:
        return error_response(422, "invalid job request", exc.errors)
    try:
        ids = await _blocking(
            request,
            functools.partial(publish, task=job.task_name),
            request.app[CELERY_KEY],
            job.pool,
            job.kind,
            params,
            job.count,
            settings.publish_waitaof_ms,
        )
    except BrokerUnavailable as exc:
        return unavailable(str(exc), ids=exc.published)
    return web.json_response({"ids": ids}, status=202)


async def get_job(request: web.Request) -> web.Response:
    task_id = request.match_info["id"]
    if not is_job_id(task_id):
        return error_response(
            400, "invalid job id", [FieldError(field="id", message="expected a UUID")]
        )
    try:
        body = await _blocking(request, job_state, request.app[CELERY_KEY], task_id)
    except UnknownJob:
        # never issued by this producer, or issued longer ago than results are kept
        message = f"no job {task_id} was issued (or its record expired with the results)"
        return web.json_response(
            {
                "error": "unknown job",
                "id": task_id,
                "field": "id",
                "errors": [{"field": "id", "message": message}],
            },
            status=404,
        )
    except (OSError, ConnectionError) as exc:
        return unavailable(str(exc))
    except Exception as exc:  # redis-py raises its own ConnectionError family
        if type(exc).__module__.startswith(("redis", "kombu")):
            return unavailable(str(exc))
        raise
    return web.json_response(body)


def _ping_broker(app: Celery) -> None:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        conn.default_channel.client.ping()


async def healthz(request: web.Request) -> web.Response:
    try:
        await _blocking(request, _ping_broker, request.app[CELERY_KEY])
    except Exception as exc:
        return unavailable(str(exc))
    return web.json_response({"status": "ok", "service": "producer"})


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(request.app[SETTINGS_KEY]))


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error is JSON, including aiohttp's own 404, 405 and 413."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        field = "body" if exc.status == 413 else "path"
        return web.json_response(
            {"error": exc.reason, "field": field, "errors": []}, status=exc.status
        )


# health checks (the launcher's, compose's, a load balancer's) carry no credentials
OPEN_PATHS = frozenset({"/healthz"})


def bearer_auth(token: str) -> Middleware:
    """Every request but the open paths needs ``Authorization: Bearer TOKEN``; else 401 JSON.

    Checked before anything else, so an unauthenticated body is never read nor parsed.
    """
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # constant-time comparison: the time taken says nothing about how much matched
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return await handler(request)
        response = error_response(
            401,
            "unauthorized",
            [FieldError(field="Authorization", message="expected 'Bearer <POOLLAB_API_TOKEN>'")],
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="poollab"'
        return response

    return middleware


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or get_settings()
    middlewares: list[Middleware] = [json_errors]
    token = settings.api_token.get_secret_value()
    if token:
        middlewares.insert(0, bearer_auth(token))
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[SETTINGS_KEY] = settings
    # a module of POOLLAB_JOBS that cannot be imported stops the producer here, with the reason
    app[USER_JOBS_KEY] = userjobs.by_spec(userjobs.registered())

    async def celery_client(app: web.Application) -> AsyncIterator[None]:
        app[CELERY_KEY] = make_client("poollab-producer", settings)
        app[EXECUTOR_KEY] = ThreadPoolExecutor(max_workers=16, thread_name_prefix="producer")
        yield
        app[EXECUTOR_KEY].shutdown(wait=True)
        app[CELERY_KEY].close()

    app.cleanup_ctx.append(celery_client)
    app.router.add_post("/jobs", post_jobs)
    app.router.add_get("/jobs/{id}", get_job)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi_json)
    return app
