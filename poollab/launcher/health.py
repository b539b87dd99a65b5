"""Is a service healthy? One probe per kind of check in the topology.

A probe answers False for anything that goes wrong on the way (a broker that is down, a
port not yet open) and catches nothing more: a stop signal arrives as
:class:`poollab.stopping.Stop`, a ``BaseException``, which goes through every ``except
Exception`` here and in the client libraries, so a SIGTERM during start-up stops the lab.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from functools import lru_cache

from celery import Celery

from poollab.celery_config import make_celery
from poollab.hooks.liveness import is_alive
from poollab.launcher.topology import Service
from poollab.settings import Settings


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


@lru_cache(maxsize=4)
def _control_app(broker_url: str, backend_url: str) -> Celery:
    return make_celery(
        "poollab-launcher",
        Settings(broker_url=broker_url, result_backend=backend_url, task_events=False),
    )


def celery_ping(settings: Settings, node: str, timeout_s: float = 1.0) -> bool:
    app = _control_app(settings.broker_url, settings.result_backend_url)
    try:
        replies = app.control.ping(destination=[node], timeout=timeout_s)
    except Exception:  # a broker that is down is an unhealthy worker, not a crash here
        return False
    return any(node in reply for reply in replies)


def consumer_alive(settings: Settings, node: str) -> bool:
    return is_alive(settings, node)


def is_healthy(service: Service, settings: Settings) -> bool:
    if service.check == "http":
        return http_ok(service.target)
    if service.check == "celery-ping":
        return celery_ping(settings, service.target)
    return consumer_alive(settings, service.target)
