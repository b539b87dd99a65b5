"""The consumer: take messages while a slot is free, run each job as a task, write results.

One fetch loop takes as many messages as there are free slots in one atomic pop-and-hold
(see :mod:`poollab.consumer.broker`), and waits on the queue without taking when it is
empty. Each message runs as its own asyncio task; its result, ack and events go through the
group-commit :class:`~poollab.consumer.writer.Writer`. Beside them: a heartbeat (events and
the liveness key) and kombu's visibility-timeout restore sweep.

Every background task runs supervised (:mod:`poollab.consumer.supervise`): a transient
failure is logged and the task started again with backoff, any other ends the consumer with
exit status 1 so that its supervisor restarts it. The liveness key is refreshed only while
the consumer can make progress: not while its results cannot be written or messages cannot
be taken.

Stopping (SIGTERM): no more messages are taken; jobs waiting for their ETA are put back at
once; running jobs get ``grace_s`` to finish; the rest are cancelled and put back, like
kombu's ``restore_unacked`` at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import states
from celery.exceptions import (
    NotRegistered,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
)
from redis.exceptions import RedisError

from poollab import jobs, userjobs
from poollab.backoff import Backoff, sleep_or_stop
from poollab.consumer import layout, protocol
from poollab.consumer.broker import Broker, Completion, Taken, make_client
from poollab.consumer.config import POOL, ConsumerConfig, restore_interval
from poollab.consumer.control import Commands, RemoteControl
from poollab.consumer.events import HEARTBEAT_FREQ, EventDispatcher
from poollab.consumer.runtime import CpuRunner, HttpClient, job_context
from poollab.consumer.slots import Slots
from poollab.consumer.supervise import supervise, transient
from poollab.consumer.writer import Writer
from poollab.hooks.layer import ConsumerHooks
from poollab.settings import Settings

log = logging.getLogger(__name__)

RESULT_REPR_MAX = 1024  # Celery's default resultrepr_maxsize


def short_repr(value: object) -> str:
    """repr() cut to Celery's size. Not celery's saferepr: profiled, it was a third of a
    noop job's time, and results here are JSON values anyway."""
    text = repr(value)
    return text if len(text) <= RESULT_REPR_MAX else text[: RESULT_REPR_MAX - 3] + "..."


@dataclass
class _Job:
    taken: Taken
    tag: str | None = None
    started: bool = False
    started_at: float | None = None


@dataclass
class Stats:
    processed: int = 0
    rejected: int = 0
    restored_at_stop: int = 0
    by_task: Counter[str] = field(default_factory=Counter)
    active: set[asyncio.Task[None]] = field(default_factory=set)


class Consumer:
    def __init__(self, config: ConsumerConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.stats = Stats()
        self._stopping = asyncio.Event()
        self._hurry = False
        self._jobs: dict[asyncio.Task[None], _Job] = {}
        # the fetch loop's task while it waits on an empty queue (and only then)
        self._waiting: asyncio.Task[Any] | None = None
        self._slots = Slots(config.concurrency)
        info = config.info(settings)
        self._info = info
        client = make_client(settings.broker_url, config.redis_connections)
        backend = None
        if settings.result_backend_url != settings.broker_url:
            backend = make_client(settings.result_backend_url, config.redis_connections)
        self.broker = Broker(client, config.queue, settings.result_expires, backend)
        self.events = EventDispatcher(
            config.nodename,
            layout.redis_db(settings.broker_url),
            settings.task_events,
            extra={
                key: info[key] for key in ("pool", "loop", "cpu_executor", "concurrency", "queue")
            },
        )
        self.writer = Writer(self.broker, self.events, self._slots.release)
        self.events.on_buffered = self.writer.poke
        self.http = HttpClient(config.concurrency)
        self.cpu = CpuRunner(config.cpu_executor, config.cpu_workers)
        self.context = job_context(settings.upstream_url, self.http, self.cpu)
        # POOLLAB_JOBS: plain callables run in the CPU executor (--cpu-executor), async ones
        # on the loop; the time limits of the kind "user" apply when a message sets none
        self.user_jobs = userjobs.registered()
        soft, hard = settings.time_limits(userjobs.USER_KIND)
        self._user_limits = (soft or None, hard)
        # where each runs, kept with the consumer's info (its liveness key) for reports
        info["user_jobs"] = {
            name: "event loop" if job.is_async else f"{config.cpu_executor} executor"
            for name, job in self.user_jobs.items()
        }
        self.ready = asyncio.Event()
        # beats: the liveness key stays fresh only while this loop's heartbeat runs
        self.hooks = ConsumerHooks(settings.broker_url, beats=True)
        if self.hooks.journal is not None or self.hooks.pause_after_store_s > 0:
            # only then: the writer's per-batch path stays free of it in the lab
            self.broker.on_stored = self._stored
        # what ended the consumer when a background task failed for good (exit status 1)
        self.failure: BaseException | None = None
        # monotonic time of the first failed take of the current streak
        self._fetch_failing_since: float | None = None
        # why the last heartbeat did not refresh the liveness key (logged once per streak)
        self._unwell: str | None = None

    # --- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking messages; a second call skips the grace period."""
        if self._stopping.is_set():
            self._hurry = True
            log.warning("stopping now: running jobs are returned to the queue")
        else:
            log.info(
                "stopping: no new messages; %d running jobs get %.1fs",
                len(self._jobs),
                self.config.grace_s,
            )
        self._stopping.set()
        self._slots.interrupt()
        if self._waiting is not None:
            self._waiting.cancel()

    async def run(self) -> None:
        background: list[asyncio.Task[Any]] = []
        try:
            await self._retrying(self.broker.declare)
            await self._retrying(lambda: self._beat("worker-online"))
            self.hooks.start(POOL, self.config.nodename, self.config.concurrency, self._info)
            remote = self._remote()
            background = [
                self._supervised("writer", self.writer.run),
                self._supervised("heartbeat", self._heartbeat_loop),
                self._supervised("loop-lag", self.hooks.loop_lag.run),
                self._supervised("restore", self._restore_loop),
                self._supervised("cpu-warm", self.cpu.warm, once=True),
                self._supervised("control", remote.run),
            ]
            log.info(
                "consumer %s: queue %r, -c %d, loop %s, cpu executor %s",
                self.config.nodename, self.config.queue, self.config.concurrency,
                self.config.loop, self.config.cpu_executor,
            )  # fmt: skip
            if self.user_jobs:
                log.info("user jobs (where they run): %s", self._info["user_jobs"])
            self.ready.set()
            await self._fetch_loop()
            await self._drain_jobs()
            if self.failure is None:
                await self._flush(timeout_s=max(5.0, self.config.grace_s))
            else:
                await self._return_unwritten()
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(RedisError, OSError):
                await self._beat("worker-offline")
            # off the loop: stopping waits for the sampler thread and deletes the liveness key
            await asyncio.to_thread(self.hooks.stop)
            await self.http.close()
            self.cpu.shutdown()
            await self.broker.close()

    def _supervised(
        self, name: str, run: Callable[[], Awaitable[None]], *, once: bool = False
    ) -> asyncio.Task[None]:
        return asyncio.create_task(supervise(name, run, self._fatal, once=once), name=name)

    def _fatal(self, name: str, exc: BaseException) -> None:
        """A task failed for good: stop now (running jobs go back), exit non-zero."""
        if self.failure is None:
            self.failure = exc
        self._hurry = True
        self.stop()

    async def _return_unwritten(self) -> None:
        """After a fatal failure: the finished jobs whose results were not written go back to
        the queue now rather than after the visibility timeout (if Redis lets them)."""
        tags = self.writer.unwritten_tags()
        if tags:
            log.error("%d finished jobs without a written result go back to the queue", len(tags))
        for tag in tags:
            await self._restore(_Job(Taken(b"", True), tag=tag))

    async def _retrying(self, action: Any) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                await action()
                return
            except (RedisError, OSError) as exc:
                delay = backoff.next()
                log.warning("redis: %s; retrying in %.1fs", exc, delay)
                await sleep_or_stop(delay, self._stopping)

    # --- taking messages -----------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        backoff = Backoff()
        maybe_more = True
        while not self._stopping.is_set():
            await self._slots.wait_free()
            if self._stopping.is_set():
                break
            want = min(self._slots.free, self.config.take_max)
            try:
                if not maybe_more and not await self._wait_for_messages():
                    break  # stop() cut the wait short
                # never cancelled midway: a take the server ran must reach us or be held
                taken, waiting = await self.broker.take(want)
                maybe_more = waiting > 0
                backoff.reset()
                self._fetch_failing_since = None
            except (RedisError, OSError) as exc:
                if not transient(exc):
                    log.critical(
                        "taking messages failed and cannot be retried (%s: %s); "
                        "the consumer stops (exit 1)",
                        type(exc).__name__,
                        exc,
                    )
                    self._fatal("fetch", exc)
                    break
                if self._fetch_failing_since is None:
                    self._fetch_failing_since = time.monotonic()
                delay = backoff.next()
                log.warning("taking messages failed: %s; retrying in %.1fs", exc, delay)
                await sleep_or_stop(delay, self._stopping)
                continue
            if taken:
                self._slots.take(len(taken))
                for item in taken:
                    self._start(item)

    async def _wait_for_messages(self) -> bool:
        """Wait for a message (or wait_s, after which the priority lists are looked at).

        Returns False when stop() cancelled the wait: only the wait, which takes nothing,
        is ever cancelled, never a take.
        """
        task = asyncio.current_task()
        self._waiting = task
        try:
            await self.broker.wait(self.config.wait_s)
        except asyncio.CancelledError:
            if task is None or not self._stopping.is_set():
                raise
            task.uncancel()
            return False
        finally:
            self._waiting = None
        return True

    def _start(self, taken: Taken) -> None:
        job = _Job(taken)
        task = asyncio.create_task(self._run_job(job))
        self._jobs[task] = job
        task.add_done_callback(self._jobs.pop)

    # --- running one job -----------------------------------------------------------------

    async def _run_job(self, job: _Job) -> None:
        try:
            message = protocol.parse(job.taken.raw)
            kind: jobs.JobKind | userjobs.UserJob | None = jobs.TASK_NAMES.get(
                message.task
            ) or self.user_jobs.get(message.task)
            if kind is None:
                raise protocol.Rejected(
                    f"unregistered task {message.task!r}",
                    NotRegistered(message.task),
                    message.task_id,
                    message.delivery_tag,
                    message.task,
                )
            if not job.taken.held:
                raise protocol.Rejected(
                    "no delivery_tag: the message cannot be held nor acknowledged",
                    protocol.MalformedMessage("message has no properties.delivery_tag"),
                    message.task_id,
                    None,
                    message.task,
                )
        except protocol.Rejected as rejected:
            self._reject(job, rejected)
            return
        job.tag = message.delivery_tag
        self._received(message)
        if message.eta is not None:
            delay = (message.eta - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
        job.started = True
        self.stats.processed += 1
        job.started_at = time.time()
        self.stats.by_task[message.task] += 1
        self.hooks.job_started(message.task_id)
        if message.expires is not None and datetime.now(UTC) > message.expires:
            self._finish(
                message,
                protocol.failure_meta(
                    message.task_id, TaskRevokedError("expired"), None, message.headers,
                    status=states.REVOKED,
                ),
            )  # fmt: skip
            self.events.task(
                "task-revoked", message.task_id, terminated=False, signum=None, expired=True
            )
            return
        self.events.task("task-started", message.task_id)
        started = time.time()
        try:
            value = await self._execute(kind, message)
            if isinstance(value, userjobs.Outcome):
                result = userjobs.envelope(value, POOL, message.sent, started)
            else:
                result = jobs.envelope(value, POOL, message.sent, started)
        except Exception as exc:
            tb = traceback.format_exc()
            log.info("task %s[%s] failed: %r", message.task, message.task_id, exc)
            self._finish(message, protocol.failure_meta(message.task_id, exc, tb, message.headers))
            self.hooks.job_finished(False)
            self.events.task(
                "task-failed", message.task_id, exception=short_repr(exc), traceback=tb
            )
            return
        self._finish(message, protocol.success_meta(message.task_id, result, message.headers))
        self.hooks.job_finished(True)
        self.events.task(
            "task-succeeded",
            message.task_id,
            result=short_repr(result),
            runtime=time.time() - started,
        )

    async def _execute(
        self, kind: jobs.JobKind | userjobs.UserJob, message: protocol.TaskMessage
    ) -> Any:
        if message.args:
            raise TypeError(
                f"{message.task} takes keyword arguments only, got {len(message.args)} positional"
            )
        soft, hard = message.soft_time_limit, message.time_limit
        job: Awaitable[Any]
        if isinstance(kind, userjobs.UserJob):
            if soft is None and hard is None:
                soft, hard = self._user_limits
            job = self._run_user(kind, message.kwargs)
        else:
            job = kind.run_async(self.context, kind.validate(message.kwargs))
        limit = hard or soft
        if limit is None:
            return await job
        try:
            async with asyncio.timeout(limit) as deadline:
                return await job
        except TimeoutError:
            if not deadline.expired():
                raise
            if hard is None:
                raise SoftTimeLimitExceeded(limit) from None
            raise TimeLimitExceeded(limit) from None

    async def _run_user(self, job: userjobs.UserJob, kwargs: dict[str, Any]) -> userjobs.Outcome:
        if not job.is_async:
            # past its time limit the job's result is a failure, but a thread or process of
            # the executor cannot be interrupted: it stays busy until the callable returns
            return await self.cpu.run(userjobs.measured_call, job, kwargs)
        before = userjobs.rss_kb()
        value = userjobs.check_json(await job.fn(**kwargs))
        return userjobs.Outcome(value, before, userjobs.rss_kb())

    def _received(self, message: protocol.TaskMessage) -> None:
        headers = message.headers
        self.events.task(
            "task-received",
            message.task_id,
            name=message.task,
            args=headers.get("argsrepr"),
            kwargs=headers.get("kwargsrepr"),
            root_id=headers.get("root_id"),
            parent_id=headers.get("parent_id"),
            retries=headers.get("retries", 0),
            eta=headers.get("eta"),
            expires=headers.get("expires"),
        )

    def _finish(self, message: protocol.TaskMessage, meta: str) -> None:
        stored = None if message.ignore_result else meta
        self.writer.add(Completion(message.task_id, stored, message.delivery_tag))

    async def _stored(self, task_ids: list[str], acked: bool) -> None:
        """Results written (by the writer); ``acked`` when their acks went in the same write."""
        for task_id in task_ids:
            self.hooks.job_stored(task_id)
        if not acked and self.hooks.pause_after_store_s > 0:
            # test-only (POOLLAB_TEST_PAUSE_AFTER_STORE_S): a kill here runs the jobs again
            await asyncio.sleep(self.hooks.pause_after_store_s)

    def _reject(self, job: _Job, rejected: protocol.Rejected) -> None:
        self.stats.rejected += 1
        tag = rejected.delivery_tag if job.taken.held else None
        log.warning(
            "rejected message (task %s, id %s): %s",
            rejected.task or "?", rejected.task_id or "?", rejected.reason,
        )  # fmt: skip
        meta = None
        if rejected.task_id:
            meta = protocol.failure_meta(rejected.task_id, rejected.error, None)
            self.events.task(
                "task-failed",
                rejected.task_id,
                exception=short_repr(rejected.error),
                traceback=None,
            )
        # also for a message with nothing to store or ack: the writer frees its slot
        self.writer.add(Completion(rejected.task_id, meta, tag))

    # --- stopping ------------------------------------------------------------------------

    async def _drain_jobs(self) -> None:
        # a snapshot: finished tasks leave self._jobs, and a cancelled one must still be seen
        held = dict(self._jobs)
        for task, job in held.items():
            if not job.started:
                task.cancel()  # waiting for its ETA: not started, so returned at once
        pending = {task for task, job in held.items() if job.started}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.grace_s
        while pending and not self._hurry:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # short waits: a second SIGTERM (hurry) must not wait out the grace period
            _, pending = await asyncio.wait(pending, timeout=min(remaining, 0.1))
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        for task, job in held.items():
            if task.cancelled():
                self._slots.release()
                if job.taken.held:
                    await self._restore(job)

    async def _restore(self, job: _Job) -> None:
        tag = job.tag or protocol.envelope_ids(job.taken.raw)[1]
        if tag is None:
            return
        try:
            if await self.broker.restore_by_tag(tag):
                self.stats.restored_at_stop += 1
        except (RedisError, OSError) as exc:
            log.error(
                "could not return message %s to the queue (%s): "
                "it comes back after the visibility timeout",
                tag,
                exc,
            )

    async def _flush(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.writer.flush(), timeout_s)
        except TimeoutError:
            log.error(
                "results still unwritten after %.1fs: "
                "their messages come back after the visibility timeout",
                timeout_s,
            )

    # --- beside the jobs -----------------------------------------------------------------

    async def _beat(self, event: str) -> None:
        message = self.events.worker(event, active=self._running(), processed=self.stats.processed)
        await self.broker.publish([message])
        if event == "worker-offline":
            return
        unwell = self._unwell_reason()
        if unwell is None:
            if self._unwell is not None:
                log.warning("making progress again: reporting alive")
            self.hooks.heartbeat()
        elif self._unwell is None:
            log.warning("not reporting alive: %s", unwell)
        self._unwell = unwell

    def _unwell_reason(self) -> str | None:
        """Why the consumer cannot make progress now, or None: the liveness key then expires."""
        stalled = self.writer.stalled()
        if stalled is not None:
            return stalled
        if self._fetch_failing_since is not None:
            failing = time.monotonic() - self._fetch_failing_since
            return f"messages cannot be taken for {failing:.1f}s"
        return None

    def _remote(self) -> RemoteControl:
        return RemoteControl(
            Commands(self.config, self.settings, self._info, self.stats, self._jobs)
        )

    def _running(self) -> int:
        return sum(1 for job in self._jobs.values() if job.started)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_FREQ)
            try:
                await self._beat("worker-heartbeat")
            except (RedisError, OSError) as exc:
                log.warning("heartbeat failed: %s", exc)

    async def _restore_loop(self) -> None:
        timeout = self.settings.visibility_timeout
        interval = self.config.restore_interval_s or restore_interval(timeout)
        while True:
            try:
                restored = await self.broker.restore_visible(timeout)
                if restored:
                    log.warning("restored %d messages held longer than %ss", restored, timeout)
            except (RedisError, OSError) as exc:
                log.warning("restore sweep failed: %s", exc)
            await asyncio.sleep(interval)
