"""The upstream service I/O jobs call: it answers after the latency asked for.

``GET /delay?ms=&jitter_ms=&fail_rate=&bytes=`` sleeps ``ms`` (± a uniform jitter), fails
with 500 at the given rate, and answers with a body of ``bytes`` bytes. Its latency is
set per request, so the I/O ceiling of a pool is known: concurrency / latency.
"""

from __future__ import annotations

import asyncio
import random

from aiohttp import web

from poollab.jobs import MAX_MS

MAX_BYTES = 10_000_000
_ZEROS = b"\0" * 65536


class BadQuery(web.HTTPBadRequest):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            text=f'{{"error": "invalid query parameter", "field": "{field}", '
            f'"detail": "{message}"}}',
            content_type="application/json",
        )


def _int_arg(request: web.Request, name: str, default: int, upper: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(name, "must be an integer") from None
    if not 0 <= value <= upper:
        raise BadQuery(name, f"must be between 0 and {upper}")
    return value


def _rate_arg(request: web.Request, name: str) -> float:
    raw = request.query.get(name)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise BadQuery(name, "must be a number") from None
    if not 0.0 <= value <= 1.0:
        raise BadQuery(name, "must be between 0 and 1")
    return value


async def delay(request: web.Request) -> web.StreamResponse:
    ms = _int_arg(request, "ms", 0, MAX_MS)
    jitter_ms = _int_arg(request, "jitter_ms", 0, MAX_MS)
    fail_rate = _rate_arg(request, "fail_rate")
    size = _int_arg(request, "bytes", 0, MAX_BYTES)
    wait_ms = ms + random.uniform(-jitter_ms, jitter_ms) if jitter_ms else ms
    if wait_ms > 0:
        await asyncio.sleep(wait_ms / 1000)
    if fail_rate and random.random() < fail_rate:
        return web.json_response({"error": "injected failure", "ms": ms}, status=500)
    if size <= len(_ZEROS):
        return web.Response(body=_ZEROS[:size], content_type="application/octet-stream")
    return web.Response(body=b"\0" * size, content_type="application/octet-stream")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": "upstream"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/delay", delay)
    app.router.add_get("/healthz", healthz)
    return app
