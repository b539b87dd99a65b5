"""The blocking HTTP client of I/O jobs.

urllib3 over the standard socket module: under ``-P gevent`` Celery monkey-patches the
socket module before this is imported, so a request waiting on the upstream yields to
the other greenlets. One pool manager per process (created after a prefork child forks).
"""

from __future__ import annotations

import os

import urllib3

_manager: urllib3.PoolManager | None = None
_manager_pid = 0


def _pool_manager() -> urllib3.PoolManager:
    global _manager, _manager_pid
    if _manager is None or _manager_pid != os.getpid():
        # enough kept-alive connections for the largest concurrency a worker runs with
        _manager = urllib3.PoolManager(maxsize=1024, block=False, retries=False)
        _manager_pid = os.getpid()
    return _manager


def http_get(url: str, timeout_s: float) -> tuple[int, bytes]:
    response = _pool_manager().request("GET", url, timeout=timeout_s, preload_content=True)
    return response.status, response.data
