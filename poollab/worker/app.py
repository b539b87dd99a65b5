"""The Celery app the workers run; its tasks live in :mod:`poollab.worker.tasks`."""

from __future__ import annotations

from poollab.celery_config import make_celery

app = make_celery("poollab")
app.conf.include = ["poollab.worker.tasks"]
