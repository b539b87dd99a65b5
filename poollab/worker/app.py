"""The Celery app the workers run: the tasks (:mod:`poollab.worker.tasks`) and the hook layer
(:mod:`poollab.worker.hooks`), which every worker loads, whoever starts it."""

from __future__ import annotations

from poollab.celery_config import make_celery

app = make_celery("poollab")
app.conf.include = ["poollab.worker.hooks", "poollab.worker.tasks"]
