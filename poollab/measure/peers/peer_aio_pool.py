"""celery-aio-pool as benchmarked: asyncio *inside* a Celery worker.

The worker is Celery's own, run with ``-P custom`` and
``CELERY_CUSTOM_WORKER_POOL=celery_aio_pool.pool:AsyncIOPool`` (the pool celery-aio-pool
documents for Celery >= 5.3), on this app's ``async def`` versions of the lab's jobs under the
lab's task names, so the messages are the ones the asyncio consumer reads.

The pool hands each coroutine to an event loop in a thread of its own and waits for it to
finish before Celery takes the next message, so jobs run one at a time whatever ``-c`` says:
the measurement shows what that costs against a Celery-protocol asyncio consumer.
"""

from __future__ import annotations

import time
from typing import Any

from poollab.celery_config import make_celery
from poollab.jobs import cpu_work
from poollab.measure.peers import peer_jobs

# the lab's own configuration (JSON only, late acks, the broker from POOLLAB_BROKER_URL as the
# benchmark sets it); the tuned profile's settings come on the worker's command line
app = make_celery("poollab-aio-pool")


@app.task(name="poollab.noop")  # type: ignore[untyped-decorator]
async def noop(x: Any = None) -> dict[str, Any]:
    return await peer_jobs.noop(x)


@app.task(name="poollab.io")  # type: ignore[untyped-decorator]
async def io(ms: int, **_: Any) -> dict[str, Any]:
    return await peer_jobs.io(ms)


@app.task(name="poollab.cpu")  # type: ignore[untyped-decorator]
async def cpu(n: int) -> dict[str, Any]:
    # the lab's cpu job body, on the pool's loop thread: it holds the GIL, as in any async def
    started = time.time()
    return peer_jobs.timed(cpu_work(n), started)
