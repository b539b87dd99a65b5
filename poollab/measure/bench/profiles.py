"""Settings profiles: how a pool's worker is configured for a benchmark run.

A profile changes only what Celery lets a user choose without touching the lab's
guarantees: results stay JSON, ``task_acks_late`` and ``task_reject_on_worker_lost`` stay
on, and ``max_connections`` stays raised (with kombu's 10, late acks break under gevent).
Worker settings go on the command line after ``--`` (Celery's ``key=value`` form), so the
exact command of every cell is in results.json and can be re-run by hand. The prefetch
multiplier is the exception: it goes as ``--prefetch-multiplier N``, because the worker's
option of that name takes its default from the app's configuration before the ``--``
settings are applied and then overrides them (Celery 5.7): ``-- worker_prefetch_multiplier=4``
left every worker at the lab's 1, measured as the same ~2 s gevent stall at 4 and at 64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from poollab.launcher.topology import Service, consumer_argv, worker_argv
from poollab.settings import CELERY_POOLS, Settings


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    # Celery worker: extra options, and settings given as ``-- key=value``
    worker_options: tuple[str, ...] = ()
    celery_settings: dict[str, str] = field(default_factory=dict)
    # per pool: settings that only make sense there
    pool_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    pool_options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    task_events: bool = True
    # the asyncio consumer
    consumer_loop: str = "uvloop"

    def settings_for(self, pool: str) -> dict[str, str]:
        return {**self.celery_settings, **self.pool_settings.get(pool, {})}

    def options_for(self, pool: str) -> tuple[str, ...]:
        return (*self.worker_options, *self.pool_options.get(pool, ()))


# One backend object (and Redis connection pool) per process instead of one per thread: Celery
# keeps ``app.backend`` in a thread-local, and under gevent's patching a thread-local is a
# greenlet-local, so every job (a new greenlet) built a new backend and opened a new Redis
# connection to store its result (measured: 1.00 new connection per job, twice the CPU per
# job). Typed with Celery's "(bool)" cast: the setting is read by the backend, not declared.
SHARED_BACKEND = {"result_backend_thread_safe": "(bool)true"}


def prefetch(multiplier: int) -> tuple[str, ...]:
    return ("--prefetch-multiplier", str(multiplier))


# gevent at a prefetch multiplier of 1 and -c 2 stalls ~2 s between pairs of jobs: Celery runs
# the gevent pool in its blocking loop (celery.worker.loops.synloop), which waits in
# drain_events(timeout=2.0); once c messages are taken and not yet acknowledged (acks late),
# kombu sends no BRPOP, and the acks that free a slot meanwhile do not wake that wait. From a
# multiplier of 2 the limit (2c) is never reached: the consumer blocks in the pool's spawn on
# the (c+1)th message and carries on as soon as a job ends. Measured on 200 cpu jobs (n=100,000)
# at -c 2, drain and live alike: 1.01 jobs/s (0.9% of the ceiling, flagged "stall") at 1;
# 62 jobs/s at 4, 62 at 64 (100 jobs, drain); the tuned profile at 2: see BENCHMARKS.md.
GEVENT_PREFETCH = 2

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "defaults",
            "Celery's defaults wherever the lab leaves a choice: prefetch multiplier 4, "
            "mingle, gossip and heartbeats on, no task events, a result backend per thread, "
            "`-l INFO` as `poollab up` runs it; asyncio consumer on the standard event loop.",
            worker_options=prefetch(4),
            task_events=False,
            consumer_loop="asyncio",
        ),
        Profile(
            "lab",
            "What `poollab up` runs: prefetch multiplier 1 (POOLLAB_PREFETCH_MULTIPLIER), "
            "task events on for Flower, mingle, gossip and heartbeats on, `-l INFO`; uvloop.",
        ),
        Profile(
            "shared-backend",
            "defaults plus one change: `result_backend_thread_safe=True`, one result backend "
            "(and Redis connection pool) per process instead of per thread or greenlet.",
            worker_options=prefetch(4),
            celery_settings=SHARED_BACKEND,
            task_events=False,
            consumer_loop="asyncio",
        ),
        Profile(
            "tuned",
            "One result backend per process (`result_backend_thread_safe=True`), no task "
            "events, `-l WARNING` (no log line nor result repr per job), no mingle, gossip "
            "or heartbeats, prefetch multiplier 1 (gevent: 2, which removes its ~2 s stall "
            "at low -c) and `-O fair` for prefork; uvloop.",
            worker_options=(
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
                *prefetch(1),
            ),
            celery_settings=SHARED_BACKEND,
            # a pool's options come after the profile's: the last --prefetch-multiplier wins
            pool_options={"prefork": ("-O", "fair"), "gevent": prefetch(GEVENT_PREFETCH)},
            task_events=False,
        ),
    )
}


def get_profile(name: str) -> Profile:
    return PROFILES[name]


def worker_service(
    pool: str, level: int, profile: Profile, settings: Settings, node: str
) -> Service:
    """The service a cell's consumer runs as: the lab's own command plus the profile."""
    profile_settings = settings.model_copy(update={"task_events": profile.task_events})
    env = {"POOLLAB_TASK_EVENTS": "true" if profile.task_events else "false"}
    if pool in CELERY_POOLS:
        argv = (
            *worker_argv(pool, level, profile_settings),
            *profile.options_for(pool),
        )
        extra = profile.settings_for(pool)
        if extra:
            argv = (*argv, "--", *(f"{key}={value}" for key, value in extra.items()))
        return Service(f"worker-{pool}", argv, "celery-ping", node, pool=pool, env=env)
    return Service(
        "consumer-asyncio",
        consumer_argv(level, profile.consumer_loop),
        "consumer",
        node,
        pool="asyncio",
        env=env,
    )
