"""One Celery configuration for the workers and for every client that sends by name."""

from __future__ import annotations

from typing import Any

from celery import Celery

from poollab import broker_transport
from poollab.settings import Settings, get_settings


def make_celery(
    main: str = "poollab",
    settings: Settings | None = None,
    app_class: type[Celery] = Celery,
) -> Celery:
    settings = settings or get_settings()
    # kombu's Redis transport with two fixes: a malformed item on a queue is dropped and
    # logged instead of stopping the worker, and a worker that loses Redis while holding
    # unacknowledged jobs reconnects instead of dying (see poollab.broker_transport)
    broker_transport.install()
    app = app_class(main, broker=settings.broker_url, backend=settings.result_backend_url)
    app.conf.update(
        # JSON only: a pickled message is refused before anything runs it
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # a job is acknowledged after it ran, and a job whose process died goes back
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=settings.prefetch_multiplier,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # kombu's default of 10 connections is too few for a gevent or threads pool
            # acknowledging late: the 11th concurrent ack raises MaxConnectionsError and the
            # job runs again after the visibility timeout
            "max_connections": settings.redis_max_connections,
            # a message whose worker died is put back only by a worker's sweep
            # (restore_visible), which kombu runs at start and then every 10th interval:
            # 100 s by default. One sweep per interval is a few cheap commands.
            "unacked_restore_interval": settings.restore_interval_s,
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        result_expires=settings.result_expires,
        redis_max_connections=settings.redis_max_connections,
        result_extended=False,
        worker_send_task_events=settings.task_events,
        task_send_sent_event=False,
        broker_connection_retry_on_startup=True,
        # a worker that lost Redis keeps trying to reconnect rather than exiting after
        # kombu's 100 attempts: nothing restarts a local lab's worker
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        # a job running when the connection drops runs to its end and is acknowledged
        # once Redis is back (the default today; Celery 6 is to cancel such jobs instead)
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # a worker that finished a job while Redis was down keeps the result and retries
        # storing it (each attempt already retries ~20 s in the Redis backend) instead of
        # losing it; clients turn this off (make_client) so that a read fails fast
        result_backend_always_retry=True,
        result_backend_max_retries=settings.result_backend_max_retries,
        # a broker that is down must not hang a request: the producer answers 503
        broker_connection_timeout=2.0,
        task_default_queue="solo",
        enable_utc=True,
        worker_hijack_root_logger=False,
    )
    return app


class _PollingClient(Celery):  # type: ignore[misc]
    """A Celery app for code that publishes by task name and polls for results.

    Celery's Redis result backend SUBSCRIBEs to every task's channel when the task is sent,
    so that ``AsyncResult.get()`` can wake up. A producer that publishes thousands of jobs
    and reads results by polling would hold a subscription per job, and while Redis is
    down each publish would wait out the backend's reconnect loop (20 s) instead of
    failing. ``get()`` still works: it subscribes on demand. Celery keeps one backend per
    thread, hence the hook here rather than on one instance.
    """

    def _get_backend(self) -> Any:
        backend = super()._get_backend()
        backend.on_task_call = _no_subscription
        return backend


def _no_subscription(producer: object, task_id: str) -> None:
    return None


def make_client(main: str, settings: Settings | None = None) -> Celery:
    app = make_celery(main, settings, app_class=_PollingClient)
    # a client reading a result while Redis is down must fail (the producer answers 503),
    # not wait out the workers' retries
    app.conf.result_backend_always_retry = False
    return app
