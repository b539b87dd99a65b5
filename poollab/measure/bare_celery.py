"""Bare Celery: the same configuration as the lab, a noop task with no validation or envelope.

It returns the time it finished, the one stamp a drain rate needs.

The lab's overhead is its noop rate against this app's, same pool, same settings, same Redis.
"""

from __future__ import annotations

import time
from typing import Any

from poollab.celery_config import make_celery

app = make_celery("bare")


@app.task(name="bare.noop")  # type: ignore[untyped-decorator]
def noop(x: Any = None) -> float:
    return time.time()
