"""The Celery app the workers run: the tasks (:mod:`poollab.worker.tasks`) and the hook layer
(:mod:`poollab.worker.hooks`), which every worker loads, whoever starts it."""

from __future__ import annotations

from poollab.celery_config import make_celery
from poollab.settings import get_settings

app = make_celery("poollab")
app.conf.include = ["poollab.worker.hooks", "poollab.worker.tasks"]
# only the workers replace a prefork child that grew too big (a leaking job): clients have none
app.conf.worker_max_memory_per_child = get_settings().max_memory_per_child_kb or None
