"""`docker compose up` for real: the lab in containers, from the README's command.

tests/test_compose.py checks the compose file without an engine; this runs it. On a Docker
engine (`.ci/start-docker`), with images built here and never pulled (`.ci/compose-standins.sh`
builds stand-ins for the official images from Debian packages: no registry is reachable in
CI), it runs `docker-compose --compatibility up --build` with the monitoring profile (Compose
v2 is not packaged for Debian 12; `--compatibility` applies the resource limits as v2 does),
under a project name of its own and publishing on a loopback address of its own, so a local
`poollab up` on 127.0.0.1 is never in the way. Then: every service healthy, every kind of
job on every pool through the published producer, Flower behind its password, the
collector's figures, Prometheus's targets; `down` and `up` again on the same volumes; and
finally `down -v`, removing everything of the project but the images.

Grafana's image cannot be built from Debian packages: it runs only where
grafana/grafana:11.2.0 is already a local image, and its test says so otherwise.

Needs root (or passwordless sudo, or a user who can reach the engine and has the images):
without, it skips. Under `.ci/run` (POOLLAB_REQUIRE_COMPOSE_UP=1) it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from poollab.settings import ALL_POOLS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
STANDINS = ROOT / ".ci" / "compose-standins.sh"

CELERY_POOLS = [pool for pool in ALL_POOLS if pool != "asyncio"]
# one small job of each kind: params as the producer's API checks them
JOBS: dict[str, dict[str, Any]] = {
    "noop": {"x": "compose"},
    "sleep": {"ms": 10},
    "cpu": {"n": 10_000},
    "io": {"ms": 10},
    "mixed": {"n": 10_000, "ms": 10},
}
# what the README says is published, by service
PUBLISHED = {
    "upstream": 8001, "producer": 8000, "collector": 8002, "flower": 5555, "locust": 8089,
    "prometheus": 9090, "grafana": 3000,
}  # fmt: skip
GRAFANA = "grafana"
PROJECT_PREFIX = "poollabtest"
# cold, everything is built: the stand-ins (about a minute) and the lab's image (its
# wheels, a few minutes); warm, only the lab's code layer
BUILD_TIMEOUT_S = 1200
HEALTHY_TIMEOUT_S = 240
JOB_TIMEOUT_S = 120
TEST_TIMEOUT_S = 1800

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)


def _unavailable(reason: str) -> NoReturn:
    """Skip, or under .ci/run (where the engine is provided) fail: it must run there."""
    if os.environ.get("POOLLAB_REQUIRE_COMPOSE_UP") == "1":
        pytest.fail(f"POOLLAB_REQUIRE_COMPOSE_UP=1 but {reason}")
    pytest.skip(reason)


@dataclass
class Docker:
    """The docker and docker-compose commands, through sudo when that is how root is had."""

    sudo: bool
    env: dict[str, str]

    def argv(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        if not self.sudo:
            return argv
        # sudo drops the caller's environment: hand it over on the command line
        return ["sudo", "-n", "env", *(f"{k}={v}" for k, v in (env or self.env).items()), *argv]

    def run(
        self,
        argv: list[str],
        timeout: float = 120,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(argv, env),
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def answers(self) -> bool:
        try:
            return self.run(["docker", "info"], timeout=30, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def image_exists(self, tag: str) -> bool:
        return self.run(["docker", "image", "inspect", tag], check=False).returncode == 0


def _base_env() -> dict[str, str]:
    # the caller's POOLLAB_* settings (worker memory, concurrency) must not change the run
    env = {"PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin", "HOME": "/root"}
    env["HOME"] = os.environ.get("HOME", env["HOME"])
    for name in ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"):
        if name in os.environ:
            env[name] = os.environ[name]
    # docker-compose 1.29's own builder (the engine's API), never the CLI's BuildKit
    env["COMPOSE_DOCKER_CLI_BUILD"] = "0"
    env["DOCKER_BUILDKIT"] = "0"
    return env


def _passwordless_sudo() -> bool:
    if shutil.which("sudo") is None:
        return False
    return subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0


def _docker() -> Docker:
    """How this process reaches the engine as root, or a skip saying why it cannot."""
    if shutil.which("docker-compose") is None or shutil.which("docker") is None:
        _unavailable("docker-compose or docker not installed (bash .ci/install-tools, as root)")
    env = _base_env()
    if os.geteuid() == 0:
        docker = Docker(sudo=False, env=env)
    elif _passwordless_sudo():
        docker = Docker(sudo=True, env=env)
    else:
        docker = Docker(sudo=False, env=env)
        if not docker.answers():
            _unavailable(
                "not root, no passwordless sudo and no access to a Docker engine: running "
                "the lab in containers needs them (the engine, and debootstrap for the images)"
            )
        return docker
    if not docker.answers():
        _unavailable("no Docker engine answers (bash .ci/start-docker starts one, as root)")
    return docker


def _images_needed() -> dict[str, str]:
    """Every image the lab needs but does not build, by the service (or file) using it."""
    compose = yaml.safe_load(COMPOSE.read_text())
    needed = {
        service["image"]: name
        for name, service in compose["services"].items()
        if "build" not in service
    }
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.M)
    assert base is not None
    needed[base.group(1)] = "Dockerfile"
    return needed


def _publish_address() -> str:
    """A loopback address on which every port the lab publishes is free."""
    wanted = os.environ.get("POOLLAB_COMPOSE_TEST_ADDR")
    candidates = [wanted] if wanted else [f"127.0.0.{n}" for n in range(2, 40)]
    for address in candidates:
        free = True
        for port in PUBLISHED.values():
            with socket.socket() as sock:
                try:
                    sock.bind((address, port))
                except OSError:
                    free = False
                    break
        if free:
            return address
    raise AssertionError(f"no loopback address among {candidates} has {PUBLISHED} free")


# --- the project's containers ----------------------------------------------------------


def _project_objects(docker: Docker, project: str) -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={project}"
    found: dict[str, list[str]] = {}
    for kind, argv in {
        "containers": ["docker", "ps", "-aq", "--filter", label],
        "volumes": ["docker", "volume", "ls", "-q", "--filter", label],
        "networks": ["docker", "network", "ls", "-q", "--filter", label],
    }.items():
        found[kind] = docker.run(argv).stdout.split()
    return found


def _remove_project(docker: Docker, project: str) -> None:
    """Whatever of a project `down -v` left (or a killed run never took down)."""
    objects = _project_objects(docker, project)
    if objects["containers"]:
        docker.run(["docker", "rm", "-f", "-v", *objects["containers"]], check=False)
    if objects["volumes"]:
        docker.run(["docker", "volume", "rm", "-f", *objects["volumes"]], check=False)
    if objects["networks"]:
        docker.run(["docker", "network", "rm", *objects["networks"]], check=False)


def _remove_abandoned_projects(docker: Docker) -> None:
    """Projects of earlier runs of this test whose process is gone: they hold ports."""
    listed = docker.run(
        ["docker", "ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}']
    ).stdout.split()
    for project in set(listed):
        match = re.fullmatch(rf"{PROJECT_PREFIX}(\d+)x[0-9a-f]+", project)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            _remove_project(docker, project)


@dataclass
class ComposeLab:
    docker: Docker
    project: str
    address: str
    auth: str
    services: list[str]
    env: dict[str, str]
    jobs_done: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = ["docker-compose", "--compatibility", "-f", str(COMPOSE), "-p", self.project]
        return self.docker.run([*argv, "--profile", "monitoring", *args], timeout, env=self.env)

    def up(self) -> None:
        # the README's `docker compose --profile monitoring up --build`, detached, naming the
        # services so that an image that cannot be had here (Grafana's) is never pulled
        self.compose("up", "--build", "-d", *self.services, timeout=BUILD_TIMEOUT_S)

    def containers(self) -> dict[str, dict[str, Any]]:
        """`docker inspect` of each of the project's containers, by service."""
        ids = self.docker.run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"]
        ).stdout.split()
        if not ids:
            return {}
        inspected = json.loads(self.docker.run(["docker", "inspect", *ids]).stdout)
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in inspected}

    def container(self, service: str) -> str:
        return str(self.containers()[service]["Id"])

    def exec(self, service: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.docker.run(["docker", "exec", self.container(service), *argv], timeout=60)

    def wait_healthy(self, timeout_s: float = HEALTHY_TIMEOUT_S) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            containers = self.containers()
            health = {name: _health(containers.get(name)) for name in self.services}
            if all(state == "healthy" for state in health.values()):
                return containers
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not healthy within {timeout_s:.0f} s: {health}\n"
                    + self._diagnose(containers, [n for n, s in health.items() if s != "healthy"])
                )
            time.sleep(3)

    def _diagnose(self, containers: dict[str, dict[str, Any]], names: list[str]) -> str:
        lines = []
        for name in names:
            container = containers.get(name)
            if container is None:
                lines.append(f"--- {name}: no container")
                continue
            state = container["State"]
            checks = (state.get("Health") or {}).get("Log") or [{}]
            lines.append(
                f"--- {name}: {state['Status']}, restarts {container['RestartCount']}, "
                f"last healthcheck: {checks[-1].get('ExitCode')} {checks[-1].get('Output')!r}"
            )
            logs = self.docker.run(["docker", "logs", "--tail", "30", container["Id"]], check=False)
            lines.append((logs.stdout + logs.stderr)[-3000:])
        return "\n".join(lines)

    def url(self, service: str, path: str) -> str:
        return f"http://{self.address}:{PUBLISHED[service]}{path}"


def _health(container: dict[str, Any] | None) -> str:
    if container is None:
        return "missing"
    state = container["State"]
    if state["Status"] != "running":
        return str(state["Status"])
    return str((state.get("Health") or {}).get("Status", "no healthcheck"))


@pytest.fixture(scope="module")
def lab() -> Iterator[ComposeLab]:
    docker = _docker()
    needed = _images_needed()
    if shutil.which("bash") is None or not STANDINS.exists():
        _unavailable(f"{STANDINS} or bash missing")
    missing = docker.run(["bash", str(STANDINS), "--missing"]).stdout.split()
    if missing:
        if os.geteuid() != 0 and not docker.sudo:
            _unavailable(f"{missing} missing, and building them needs root")
        docker.run(["bash", str(STANDINS), *missing], timeout=BUILD_TIMEOUT_S)
    standins = set(docker.run(["bash", str(STANDINS), "--list"]).stdout.split())
    # an image compose would have to pull must never be asked for: every one exists here, or
    # its service is left out (Grafana's, with no stand-in)
    absent = {tag: user for tag, user in needed.items() if not docker.image_exists(tag)}
    assert set(absent) <= {tag for tag, user in needed.items() if user == GRAFANA}, (
        f"images no local build provides (a stand-in in {STANDINS.name}?): {absent}; "
        f"stand-ins: {sorted(standins)}"
    )
    services = list(yaml.safe_load(COMPOSE.read_text())["services"])
    if absent:
        services.remove(GRAFANA)

    _remove_abandoned_projects(docker)
    project = f"{PROJECT_PREFIX}{os.getpid()}x{secrets.token_hex(3)}"
    auth = f"lab:{secrets.token_urlsafe(12)}"
    address = _publish_address()
    env = {**docker.env, "FLOWER_BASIC_AUTH": auth, "POOLLAB_PUBLISH_ADDR": address}
    compose_lab = ComposeLab(docker, project, address, auth, services, env)
    try:
        compose_lab.up()
        compose_lab.wait_healthy()
        yield compose_lab
    finally:
        try:
            compose_lab.compose("down", "-v", "--remove-orphans", "--timeout", "45", timeout=300)
        finally:
            # whatever `down` missed, then proof that nothing of the project is left
            _remove_project(docker, project)
            left = _project_objects(docker, project)
            assert not any(left.values()), f"left behind by {project}: {left}"


# --- HTTP, only to the published loopback ports -----------------------------------------


def _request(
    url: str, body: dict[str, Any] | None = None, auth: str | None = None
) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, or a POST of ``body`` as JSON."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.headers.get_content_type(), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read().decode()


def _send_job(lab: ComposeLab, pool: str, kind: str) -> str:
    status, _, text = _request(
        lab.url("producer", "/jobs"), {"pool": pool, "kind": kind, "params": JOBS[kind]}
    )
    assert status in (200, 201, 202), (pool, kind, status, text)
    ids = json.loads(text)["ids"]
    assert len(ids) == 1, text
    return str(ids[0])


def _wait_jobs(lab: ComposeLab, jobs: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Each job's `GET /jobs/{id}` once it succeeded; a failed one fails the test."""
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while len(done) < len(jobs):
        for job_id, (pool, kind) in jobs.items():
            if job_id in done:
                continue
            status, _, text = _request(lab.url("producer", f"/jobs/{job_id}"))
            assert status == 200, (pool, kind, status, text)
            job = json.loads(text)
            assert job["state"] not in ("FAILURE", "REVOKED"), (pool, kind, job)
            if job["state"] == "SUCCESS":
                done[job_id] = job
        if len(done) < len(jobs):
            pending = sorted(jobs[i] for i in jobs if i not in done)
            assert time.monotonic() < deadline, f"not done in {JOB_TIMEOUT_S} s: {pending}"
            time.sleep(0.5)
    return done


def _check_value(kind: str, value: Any) -> None:
    params = JOBS[kind]
    if kind == "noop":
        assert value == params["x"]
    elif kind == "sleep":
        assert value == params["ms"]
    elif kind == "cpu":
        assert isinstance(value, int)
    elif kind == "io":
        assert value["status"] == 200, value
    else:
        assert isinstance(value["cpu"], int) and value["io"]["status"] == 200, value


def _pools_in_metric(exposition: str, metric: str) -> set[str]:
    return set(re.findall(rf'^{metric}{{[^}}]*pool="(\w+)"', exposition, re.M))


# --- the tests, in order: up, use, down and up again ------------------------------------


def test_every_service_comes_up_healthy_with_its_limits_and_on_loopback(
    lab: ComposeLab,
) -> None:
    containers = lab.wait_healthy()
    assert set(containers) == set(lab.services)
    for name, container in containers.items():
        # published only where told, never on every interface
        for bindings in (container["NetworkSettings"]["Ports"] or {}).values():
            for binding in bindings or []:
                assert binding["HostIp"] == lab.address, (name, binding)
        if name in PUBLISHED:
            assert container["NetworkSettings"]["Ports"][f"{PUBLISHED[name]}/tcp"], name
    # --compatibility: each consumer's deploy.resources.limits, as Compose v2 applies them
    for name in [f"worker-{pool}" for pool in CELERY_POOLS] + ["consumer-asyncio"]:
        host = containers[name]["HostConfig"]
        assert host["Memory"] == 1024**3 and host["NanoCpus"] == 10**9, (name, host)
    # the lab's processes are not root
    for name in ("producer", "collector", "worker-prefork"):
        assert lab.exec(name, "id", "-u").stdout.strip() == "10001", name


def test_every_kind_of_job_runs_on_every_pool_through_the_producer(lab: ComposeLab) -> None:
    jobs = {
        _send_job(lab, pool, kind): (pool, kind) for pool in ALL_POOLS for kind in JOBS
    }  # fmt: skip
    done = _wait_jobs(lab, jobs)
    for job_id, job in done.items():
        pool, kind = jobs[job_id]
        assert job["worker"]["pool"] == pool, (pool, kind, job)
        _check_value(kind, job["result"])
        timings = job["timings"]
        assert timings["sent"] <= timings["started"] <= timings["finished"], job
        lab.jobs_done[job_id] = pool


def test_flower_asks_for_its_password_and_lists_the_celery_workers(lab: ComposeLab) -> None:
    assert _request(lab.url("flower", "/"))[0] == 401
    assert _request(lab.url("flower", "/"), auth="lab:wrong")[0] == 401
    assert _request(lab.url("flower", "/"), auth=lab.auth)[0] == 200
    assert _request(lab.url("flower", "/api/workers"))[0] == 401
    # refresh=1: Flower asks the workers now rather than answering from its cache
    status, _, text = _request(lab.url("flower", "/api/workers?refresh=1"), auth=lab.auth)
    assert status == 200, text
    nodes = set(json.loads(text))
    for pool in CELERY_POOLS:
        assert any(node.startswith(f"{pool}@") for node in nodes), (pool, sorted(nodes))
    # what the healthcheck and Prometheus use needs no password
    assert _request(lab.url("flower", "/healthcheck"))[0] == 200
    assert _request(lab.url("flower", "/metrics"))[0] == 200


def test_the_collector_samples_every_pool_and_shows_them_live(lab: ComposeLab) -> None:
    # samples come every few seconds: a pool's first may not be there the moment all is up
    deadline = time.monotonic() + 60
    while True:
        status, _, metrics = _request(lab.url("collector", "/metrics"))
        assert status == 200
        sampled = _pools_in_metric(metrics, "poollab_consumer_rss_bytes")
        if sampled >= set(ALL_POOLS) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert sampled >= set(ALL_POOLS), f"poollab_consumer_rss_bytes only for {sorted(sampled)}"

    status, kind, text = _request(lab.url("collector", "/api/pools"))
    assert status == 200 and kind == "application/json", (status, kind, text[:500])
    pools = json.loads(text)["pools"]
    assert set(ALL_POOLS) <= set(pools), sorted(pools)
    for pool in ALL_POOLS:
        assert isinstance(pools[pool], dict), (pool, pools[pool])

    status, kind, page = _request(lab.url("collector", "/"))
    assert status == 200 and kind == "text/html", (status, kind)
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page):
        assert _request(lab.url("collector", asset))[0] == 200, asset
    # the page draws its table from /api/pools in the browser: what it lists is seen only
    # once its script ran (Chromium, which .ci/install-tools installs)
    from poollab import chromium

    if chromium.find_chromium() is None:
        pytest.skip("no chromium on PATH: the live page's rendered table is not checked")
    dom = chromium.dump_dom(lab.url("collector", "/"), 4000, 90.0)
    for pool in ALL_POOLS:
        assert f'data-pool="{pool}"' in dom, (pool, dom[:2000])


def test_prometheus_scrapes_the_collector_and_flower(lab: ComposeLab) -> None:
    deadline = time.monotonic() + 60
    while True:
        status, _, text = _request(lab.url("prometheus", "/api/v1/targets?state=active"))
        assert status == 200, text
        targets = {
            t["labels"]["job"]: (t["health"], t["lastError"])
            for t in json.loads(text)["data"]["activeTargets"]
        }
        if all(health == "up" for health, _ in targets.values()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert {"poollab-collector", "flower"} <= set(targets), targets
    assert all(health == "up" for health, _ in targets.values()), targets


def test_grafana_runs_where_its_image_exists(lab: ComposeLab) -> None:
    if GRAFANA not in lab.services:
        pytest.skip(
            "grafana/grafana:11.2.0 is not a local image, and Grafana cannot be built from "
            "Debian packages (.ci/compose-standins.sh has no stand-in for it): not started"
        )
    status, _, text = _request(lab.url("grafana", "/api/health"))
    assert status == 200, text


def _collector_runs(lab: ComposeLab) -> list[str]:
    # the collector starts a run directory in its data volume each time it starts
    listed = lab.exec("collector", "ls", "-1", "/app/.poollab/collector").stdout.split()
    return sorted(listed)


def test_down_and_up_again_keeps_the_volumes_and_their_owners_can_write(
    lab: ComposeLab,
) -> None:
    kept = _send_job(lab, "threads", "noop")
    _wait_jobs(lab, {kept: ("threads", "noop")})
    runs_before = _collector_runs(lab)
    assert runs_before, "the collector wrote nothing into its volume"

    lab.compose("down", "--timeout", "45", timeout=300)  # volumes kept
    assert not lab.containers()
    lab.up()
    lab.wait_healthy()

    # Redis's append-only file brought back what it had: the job's stored result
    status, _, text = _request(lab.url("producer", f"/jobs/{kept}"))
    assert status == 200 and json.loads(text)["state"] == "SUCCESS", text
    for job_id, pool in list(lab.jobs_done.items())[:5]:
        status, _, text = _request(lab.url("producer", f"/jobs/{job_id}"))
        assert json.loads(text)["worker"]["pool"] == pool, text

    # Redis, as its own user, still writes its volume: a rewrite of the append-only file
    # creates new files in /data
    assert lab.exec("redis", "stat", "-c", "%U", "/data/appendonlydir").stdout.strip() == "redis"
    lab.exec("redis", "redis-cli", "BGREWRITEAOF")
    deadline = time.monotonic() + 30
    while True:
        info = lab.exec("redis", "redis-cli", "INFO", "persistence").stdout
        if "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info:
            break
        assert time.monotonic() < deadline, info
        time.sleep(0.5)
    assert "aof_last_bgrewrite_status:ok" in info and "aof_last_write_status:ok" in info, info

    # the collector (user lab) opened a new run in its volume, next to the old ones
    deadline = time.monotonic() + 30
    while len(runs := _collector_runs(lab)) <= len(runs_before):
        assert time.monotonic() < deadline, (runs_before, runs)
        time.sleep(1)
    assert set(runs_before) < set(runs)
    probe = "/app/.poollab/collector/.write-probe"
    lab.exec("collector", "sh", "-c", f"echo ok > {probe} && rm {probe}")

    # and the lab works as before
    again = {_send_job(lab, pool, "io"): (pool, "io") for pool in ALL_POOLS}
    for job_id, job in _wait_jobs(lab, again).items():
        assert job["worker"]["pool"] == again[job_id][0], job
