"""The bench's own local lab: Redis, the upstream, and one consumer at a time.

One consumer runs at a time so that each has the machine to itself (on 2 cores, an idle
worker's heartbeats and polling would otherwise be charged to the one measured). Each
(pool, concurrency, profile) gets a fresh process: ``Lab.restart`` stops the previous one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from celery import Celery

from poollab.celery_config import make_client
from poollab.hooks.sampler import Sample
from poollab.launcher.health import consumer_alive
from poollab.launcher.lab import Lab, LabError, broker_for_local_lab
from poollab.launcher.redis_server import free_port
from poollab.launcher.topology import Service, build_services, nodename
from poollab.measure.bench.profiles import Profile, worker_service
from poollab.measure.queues import remove_own_messages
from poollab.measure.samples import read_samples
from poollab.settings import Settings

# how long a consumer may take to write its first samples: its hook layer starts sampling
# once it is ready, so a consumer that writes none by then is broken, not slow
FIRST_SAMPLE_GRACE_S = 10.0
IDLE_SAMPLES = 3


class BenchError(RuntimeError):
    pass


@dataclass
class WorkerRun:
    """One consumer process the bench started, and what it looked like before any job."""

    pool: str
    level: int
    profile: Profile
    service: Service
    pid: int
    started_at: float
    idle: list[Sample] = field(default_factory=list)

    @property
    def node(self) -> str:
        return self.service.target


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class BenchLab:
    def __init__(
        self,
        environ: dict[str, str],
        run_dir: Path,
        sample_interval_s: float,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.environ = environ
        self.run_dir = run_dir
        self.sample_interval_s = sample_interval_s
        self.say = say or (lambda _m: None)
        self.lab: Lab | None = None
        self.settings: Settings | None = None
        # the environment of the lab's processes: its broker and upstream (after start())
        self.env: dict[str, str] = dict(environ)
        self.client: Celery | None = None
        self.redis: redis.Redis | None = None
        self.embedded = False
        self.broker_label = ""
        self.host = socket.gethostname()

    # --- the lab ------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> None:
        try:
            broker_url, embedded = broker_for_local_lab(self.environ)
        except LabError as exc:
            raise BenchError(str(exc)) from None
        self.embedded = embedded is not None
        self.broker_label = "embedded" if embedded is not None else "POOLLAB_BROKER_URL"
        base = Settings(broker_url=broker_url)
        port = base.upstream_port
        if not _port_free(port):
            # something else (a running `poollab up`) has the port: the bench's upstream is
            # its own, so any free port will do
            port = free_port()
        settings = base.model_copy(
            update={"upstream_port": port, "upstream_url": f"http://127.0.0.1:{port}"}
        )
        env = {
            **self.environ,
            "POOLLAB_BROKER_URL": broker_url,
            "POOLLAB_UPSTREAM_PORT": str(port),
            "POOLLAB_UPSTREAM_URL": settings.upstream_url,
            "POOLLAB_SAMPLE_INTERVAL_S": str(self.sample_interval_s),
        }
        self.settings = settings
        self.env = env
        self.lab = Lab(settings, env, self.run_dir, on_event=self.say)
        self.lab.redis = embedded
        self.redis = redis.Redis.from_url(broker_url, socket_timeout=10.0)
        self.client = make_client("poollab-bench", settings)
        upstream = build_services(settings, self.host, (), with_flower=False)[0]
        try:
            self.lab.start([upstream], timeout_s=timeout_s)
        except LabError as exc:
            raise BenchError(str(exc)) from None

    def stop(self) -> None:
        if self.lab is not None:
            self.lab.stop(grace_s=15.0)
        if self.redis is not None:
            self.redis.close()

    def check_no_other_consumers(self, pools: tuple[str, ...]) -> None:
        """Refuse a broker where another lab's consumers take jobs from the same queues."""
        assert self.client is not None and self.settings is not None
        try:
            replies = self.client.control.ping(timeout=1.0)
        except Exception:  # no answer at all is what we hope for
            replies = []
        nodes = sorted(node for reply in replies or [] for node in reply)
        if "asyncio" in pools and consumer_alive(self.settings, nodename("asyncio", self.host)):
            nodes.append(nodename("asyncio", self.host))
        if nodes:
            raise BenchError(
                f"consumers already run on this broker ({self.broker_label}): "
                f"{', '.join(nodes)}; stop that lab, or point POOLLAB_BROKER_URL at a Redis "
                "of the bench's own"
            )

    def check_queues_empty(self, pools: tuple[str, ...]) -> None:
        assert self.redis is not None
        busy = {pool: int(self.redis.llen(pool)) for pool in pools}
        busy = {pool: n for pool, n in busy.items() if n}
        if busy:
            listed = ", ".join(f"{pool} ({n})" for pool, n in busy.items())
            raise BenchError(
                f"queues already hold messages: {listed}; the bench needs them empty "
                "(drain them, or point POOLLAB_BROKER_URL at another Redis database)"
            )

    def service_pids(self, *names: str) -> list[int]:
        assert self.lab is not None
        return [run.process.pid for name, run in self.lab.running.items() if name in names]

    def redis_pid(self) -> int | None:
        assert self.lab is not None
        redis_server = self.lab.redis
        return redis_server.process.pid if redis_server and redis_server.process else None

    # --- consumers ----------------------------------------------------------------------

    def start_worker(
        self, pool: str, level: int, profile: Profile, timeout_s: float = 90.0
    ) -> WorkerRun:
        assert self.lab is not None and self.settings is not None
        service = worker_service(pool, level, profile, self.settings, nodename(pool, self.host))
        started = time.time()
        try:
            self.lab.restart(service, timeout_s=timeout_s)
        except LabError as exc:
            raise BenchError(str(exc)) from None
        worker = WorkerRun(
            pool, level, profile, service, self.lab.running[service.name].process.pid, started
        )
        worker.idle = self._idle_samples(worker)
        return worker

    def stop_worker(self, worker: WorkerRun) -> None:
        assert self.lab is not None
        self.lab.stop_service(worker.service.name, grace_s=15.0)

    def _idle_samples(self, worker: WorkerRun) -> list[Sample]:
        """A few samples of the consumer before any job: its idle footprint."""
        assert self.redis is not None
        ready = time.time()
        deadline = ready + FIRST_SAMPLE_GRACE_S + IDLE_SAMPLES * self.sample_interval_s
        samples: list[Sample] = []
        while time.time() < deadline:
            samples = read_samples(self.redis, worker.pool, ready, time.time(), worker.node)
            samples = [s for s in samples if s.pid == worker.pid]
            if len(samples) >= IDLE_SAMPLES:
                return samples
            time.sleep(self.sample_interval_s / 2)
        if not samples:
            raise BenchError(
                f"{worker.node} wrote no resource samples within {FIRST_SAMPLE_GRACE_S:.0f} s "
                f"(is POOLLAB_SAMPLE_INTERVAL_S 0?); its log: {self.log_of(worker)}"
            )
        return samples

    def log_of(self, worker: WorkerRun) -> str:
        assert self.lab is not None
        run = self.lab.running.get(worker.service.name)
        return str(run.log_path) if run else "(not running)"

    def samples_until(self, worker: WorkerRun, end: float, timeout_s: float = 3.0) -> None:
        """Wait (bounded) until the consumer has written a sample taken after ``end``."""
        assert self.redis is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            after = read_samples(self.redis, worker.pool, end, end + 60.0, worker.node)
            if after:
                return
            time.sleep(self.sample_interval_s / 2)

    # --- drain mode: hold the consumer while the queue fills ----------------------------

    def pause(self, worker: WorkerRun) -> None:
        """Freeze the consumer's whole process group (SIGSTOP) while the queue fills.

        The same for every pool, and nothing restarts: Celery's ``cancel_consumer`` /
        ``add_consumer`` left a prefork worker on Redis not consuming at all after the
        ``add_consumer`` (observed here with Celery 5.7), and stopping the asyncio consumer
        would put its start-up into the measurement. A frozen consumer takes at most the
        one message its pending blocking pop is handed, which it runs once thawed.
        """
        os.killpg(worker.pid, signal.SIGSTOP)

    def resume(self, worker: WorkerRun) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def held(self, worker: WorkerRun) -> Iterator[None]:
        """Paused inside the block; thawed on the way out whatever happens."""
        self.pause(worker)
        try:
            yield
        finally:
            self.resume(worker)

    def purge(self, pool: str, ids: Collection[str]) -> int:
        """Take what is left of a cell that timed out off its queue; returns how many.

        On the embedded Redis the bench started, the queue is the bench's: it is dropped
        whole. On a Redis it was given (``POOLLAB_BROKER_URL``) the bench deletes no queue:
        it removes only its own messages, the ones whose task id is in ``ids``.
        """
        assert self.redis is not None
        try:
            if self.embedded:
                left = int(self.redis.llen(pool))
                self.redis.delete(pool)
                self.say(f"dropped queue '{pool}' ({left} jobs left) on the bench's own Redis")
                return left
            removed = remove_own_messages(self.redis, pool, ids)
        except redis.RedisError as exc:
            self.say(f"could not clear queue '{pool}': {exc}")
            return 0
        self.say(
            f"removed {removed} of this cell's jobs from queue '{pool}' by task id "
            "(POOLLAB_BROKER_URL is not the bench's own Redis: nothing else there is touched)"
        )
        return removed
