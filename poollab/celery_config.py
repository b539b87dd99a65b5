"""One Celery configuration for the workers and for every client that sends by name."""

from __future__ import annotations

from typing import Any

from celery import Celery

from poollab.settings import Settings, get_settings


def make_celery(
    main: str = "poollab",
    settings: Settings | None = None,
    app_class: type[Celery] = Celery,
) -> Celery:
    settings = settings or get_settings()
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
        },
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        result_expires=settings.result_expires,
        redis_max_connections=settings.redis_max_connections,
        result_extended=False,
        worker_send_task_events=settings.task_events,
        task_send_sent_event=False,
        broker_connection_retry_on_startup=True,
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
    return make_celery(main, settings, app_class=_PollingClient)
