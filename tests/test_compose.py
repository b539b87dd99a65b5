"""docker-compose.yml cannot drift from the code: its commands are the topology's, and each
one, run as a local process against the tests' Redis, becomes healthy by the compose
file's own healthcheck.

There is no Docker engine here. Container host names (redis, upstream, producer, locust)
become 127.0.0.1 and the fixed ports become free ones; nothing else is changed.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from poollab.launcher.lab import Lab
from poollab.launcher.redis_server import RedisServer
from poollab.launcher.topology import Service, build_services
from poollab.settings import ALL_POOLS, Settings
from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "poollab.json"
BIN = Path(sys.executable).parent
FLOWER_AUTH = "lab:compose-test"

WORKERS = [f"worker-{pool}" for pool in ALL_POOLS if pool != "asyncio"] + ["consumer-asyncio"]
PYTHON_SERVICES = [
    "upstream", "producer", *WORKERS, "collector", "flower", "locust", "locust-worker",
]  # fmt: skip
# the fixed ports of the compose file, each replaced by a free one locally
COMPOSE_PORTS = {"producer": 8000, "upstream": 8001, "collector": 8002, "flower": 5555}
LOCUST_WEB_PORT, LOCUST_MASTER_PORT = 8089, 5557

_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${V}, ${V:-default}, ${V-default}, ${V:?error}, $$."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3)
        value = env.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is not None:
            return value
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op and op.endswith("-") else ""

    return _VARIABLE.sub(one, text)


def _walk(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    return node


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file as compose sees it with only ``env`` set (defaults everywhere else)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    return dict(_walk(raw, {"FLOWER_BASIC_AUTH": FLOWER_AUTH} if env is None else env))


def without_bind(argv: list[str] | tuple[str, ...]) -> list[str]:
    """A command with its bind address left out: 127.0.0.1 locally, 0.0.0.0 in a container."""
    out: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token in ("--host", "--web-host"):
            skip = True
            continue
        if token.startswith(("--address=", "--host=", "--web-host=")):
            continue
        out.append(token)
    return out


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as in a container: nothing from this machine's POOLLAB_* variables."""
    for name in list(os.environ):
        if name.startswith("POOLLAB_"):
            monkeypatch.delenv(name)
    return Settings()


# --- the file itself ------------------------------------------------------------------


def test_every_service_is_there_with_a_healthcheck_and_healthy_dependencies() -> None:
    services = load_compose()["services"]
    assert set(services) == {"redis", *PYTHON_SERVICES, "prometheus", "grafana"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition == {"condition": "service_healthy"}, f"{name} → {dependency}"
    for name in PYTHON_SERVICES:
        service = services[name]
        assert service["image"] == "poollab:latest" and service["build"] == ".", name
        env = service["environment"]
        assert env["POOLLAB_BROKER_URL"] == "redis://redis:6379/0", name
        assert env["POOLLAB_UPSTREAM_URL"] == "http://upstream:8001", name
    # Flower sees every consumer: the workers send events (-E), the asyncio consumer too
    for name in WORKERS:
        assert services[name]["environment"]["POOLLAB_TASK_EVENTS"] == "true", name
        if name.startswith("worker-"):
            assert "-E" in services[name]["command"], name
    assert {n for n, s in services.items() if s.get("profiles")} == {"prometheus", "grafana"}
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]


def test_redis_is_private_and_persistent() -> None:
    compose = load_compose()
    redis_service = compose["services"]["redis"]
    assert "ports" not in redis_service and "expose" not in redis_service
    command = redis_service["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume, _, mount = redis_service["volumes"][0].partition(":")
    assert mount == "/data" and volume in compose["volumes"]


def test_redis_fsyncs_as_the_lab_is_configured(default_settings: Settings) -> None:
    """The same fsync policy as the Redis the lab starts itself (POOLLAB_REDIS_APPENDFSYNC,
    ``always`` by default), and the producer's confirmation setting passed through."""

    def appendfsync(env: dict[str, str]) -> str:
        command = load_compose({"FLOWER_BASIC_AUTH": FLOWER_AUTH, **env})["services"]["redis"][
            "command"
        ]
        return str(command[command.index("--appendfsync") + 1])

    assert appendfsync({}) == default_settings.redis_appendfsync == "always"
    assert appendfsync({"POOLLAB_REDIS_APPENDFSYNC": "everysec"}) == "everysec"
    with RedisServer(persistent=True) as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("appendfsync")["appendfsync"] == appendfsync({})
        client.close()
    for env, expected in (({}, "0"), ({"POOLLAB_PUBLISH_WAITAOF_MS": "500"}, "500")):
        services = load_compose({"FLOWER_BASIC_AUTH": FLOWER_AUTH, **env})["services"]
        assert services["producer"]["environment"]["POOLLAB_PUBLISH_WAITAOF_MS"] == expected
        assert Settings(publish_waitaof_ms=int(expected)).publish_waitaof_ms == int(expected)


def test_published_ports_are_on_loopback_unless_told_otherwise() -> None:
    services = load_compose()["services"]
    published = {n: s["ports"] for n, s in services.items() if s.get("ports")}
    assert set(published) == {
        "upstream", "producer", "collector", "flower", "locust", "prometheus", "grafana",
    }  # fmt: skip
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"
    exposed = load_compose({"FLOWER_BASIC_AUTH": "a:b", "POOLLAB_PUBLISH_ADDR": "0.0.0.0"})
    assert exposed["services"]["flower"]["ports"] == ["0.0.0.0:5555:5555"]


def test_every_consumer_gets_the_same_resource_limits() -> None:
    services = load_compose()["services"]
    limits = [services[name]["deploy"]["resources"]["limits"] for name in WORKERS]
    assert limits[0].keys() == {"cpus", "memory"}
    assert all(limit == limits[0] for limit in limits), limits


def test_flower_requires_basic_auth_from_the_environment_without_a_default() -> None:
    text = COMPOSE.read_text()
    assert re.search(r'FLOWER_BASIC_AUTH: "\$\{FLOWER_BASIC_AUTH:\?[^}]+\}"', text)
    with pytest.raises(KeyError, match="FLOWER_BASIC_AUTH"):
        load_compose({})
    assert load_compose()["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"] == FLOWER_AUTH


def test_user_jobs_are_mounted_and_named_from_the_environment() -> None:
    services = load_compose()["services"]
    for name in ("producer", *WORKERS):
        assert "./jobs:/app/jobs:ro" in services[name]["volumes"], name
        assert services[name]["environment"]["POOLLAB_JOBS"] == "", name
    chosen = load_compose({"FLOWER_BASIC_AUTH": FLOWER_AUTH, "POOLLAB_JOBS": "mytasks"})
    assert chosen["services"]["worker-gevent"]["environment"]["POOLLAB_JOBS"] == "mytasks"
    # the others do not import them (Flower would, through the worker app, without the folder)
    for name in ("flower", "collector", "locust", "locust-worker", "upstream"):
        assert "POOLLAB_JOBS" not in services[name].get("environment", {}), name
    # everything else of the shared environment is still there
    assert services["producer"]["environment"]["POOLLAB_BROKER_URL"] == "redis://redis:6379/0"
    # the mount point is on the image's import path, and the folder is in the repository
    assert "ENV PYTHONPATH=/app/jobs" in (ROOT / "Dockerfile").read_text()
    assert (ROOT / "jobs" / "README.md").is_file()


def test_locust_workers_can_scale() -> None:
    worker = load_compose()["services"]["locust-worker"]
    # a fixed name or host port would stop `--scale locust-worker=N`
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"][-2:] == ["--master-host", "locust"]


def test_compose_commands_are_the_topology_commands(default_settings: Settings) -> None:
    services = load_compose()["services"]
    topology = build_services(default_settings, "host", ALL_POOLS, with_flower=True)
    assert {s.name for s in topology} <= set(services)
    for service in topology:
        compose_argv = services[service.name]["command"]
        assert without_bind(compose_argv) == without_bind(service.argv), service.name
    if "collector" not in {s.name for s in topology}:
        # not in the topology yet: at least the command the collector's engineer named
        assert services["collector"]["command"][:3] == ["poollab", "serve", "collector"]
    # the bind address is the only difference, and every listener binds all interfaces
    for name in ("upstream", "producer", "collector", "flower", "locust"):
        command = " ".join(services[name]["command"])
        assert "0.0.0.0" in command, name


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_validates_the_file() -> None:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    ok = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        env={**env, "FLOWER_BASIC_AUTH": FLOWER_AUTH},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    # no password, no lab: compose itself refuses, naming the variable
    refused = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "FLOWER_BASIC_AUTH" in refused.stderr


# --- every command as a local process -------------------------------------------------


@dataclass
class LocalCompose:
    """The compose services running as local processes on loopback."""

    lab: Lab
    ports: dict[str, int]
    envs: dict[str, dict[str, str]]
    healthchecks: dict[str, list[str]] = field(default_factory=dict)


def _localize(text: str, ports: dict[str, int], redis_url: str) -> str:
    """Container host names to loopback, fixed ports to this test's free ones."""
    text = text.replace("redis://redis:6379/0", redis_url)
    text = text.replace("0.0.0.0", "127.0.0.1")
    for host in ("upstream", "producer", "collector", "flower", "locust"):
        port = COMPOSE_PORTS.get(host, LOCUST_WEB_PORT)
        text = text.replace(f"//{host}:{port}", f"//127.0.0.1:{ports[host]}")
        text = text.replace(f"//127.0.0.1:{port}", f"//127.0.0.1:{ports[host]}")
    for host, port in COMPOSE_PORTS.items():
        if text in (str(port), f"--port={port}"):
            return text.replace(str(port), str(ports[host]))
    return text


def _command(argv: list[str]) -> list[str]:
    """This environment's executables, as the image's PATH would find them."""
    first = {"python": sys.executable}.get(argv[0], str(BIN / argv[0]))
    return [first, *argv[1:]]


def _healthcheck_argv(test: list[str] | str) -> tuple[list[str], bool]:
    """A compose healthcheck test as (argv, through a shell)."""
    if isinstance(test, str):
        return ["sh", "-c", test], True
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1]], True
    assert test[0] == "CMD", test
    return _command(list(test[1:])), False


def run_healthcheck(compose: LocalCompose, name: str, timeout_s: float = 45.0) -> None:
    """Run a service's compose healthcheck until it passes (as compose retries it)."""
    argv = compose.healthchecks[name]
    env = {
        **compose.envs[name],
        # the container's $HOSTNAME is what %h expands to in the node names
        "HOSTNAME": socket.gethostname(),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    deadline = time.monotonic() + timeout_s
    while True:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name}: healthcheck {argv} failed ({result.returncode}): "
                f"{result.stdout[-500:]} {result.stderr[-500:]}"
            )
        time.sleep(1.0)


@pytest.fixture(scope="module")
def local_compose(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCompose]:
    redis_url = redis_server.url + "/3"
    names = ["producer", "upstream", "collector", "flower", "locust", "locust-master"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    services = load_compose()["services"]
    base_env = {
        name: value for name, value in os.environ.items() if not name.startswith("POOLLAB_")
    }
    settings = Settings(
        broker_url=redis_url,
        upstream_url=f"http://127.0.0.1:{ports['upstream']}",
        producer_port=ports["producer"],
        upstream_port=ports["upstream"],
        flower_port=ports["flower"],
        collector_port=ports["collector"],
    )
    topology = {s.name: s for s in build_services(settings, socket.gethostname(), ALL_POOLS)}
    to_start: list[Service] = []
    envs: dict[str, dict[str, str]] = {}
    healthchecks: dict[str, list[str]] = {}
    for name in PYTHON_SERVICES:
        service = services[name]
        env = {k: _localize(str(v), ports, redis_url) for k, v in service["environment"].items()}
        if name.startswith("locust"):
            # the master's ports, by Locust's own variables: the commands stay as they are
            env |= {
                "LOCUST_WEB_PORT": str(ports["locust"]),
                "LOCUST_MASTER_BIND_HOST": "127.0.0.1",
                "LOCUST_MASTER_BIND_PORT": str(ports["locust-master"]),
                "LOCUST_MASTER_NODE_PORT": str(ports["locust-master"]),
            }
        if "POOLLAB_COLLECTOR_DATA_DIR" in env:  # the container's volume, here a temporary one
            env["POOLLAB_COLLECTOR_DATA_DIR"] = str(tmp_path_factory.mktemp("collector-data"))
        envs[name] = {**base_env, **env}
        command = service["command"]
        argv = tuple(
            # the master's host name, for its workers
            "127.0.0.1"
            if i and command[i - 1] == "--master-host"
            else _localize(t, ports, redis_url)
            for i, t in enumerate(command)
        )
        if name in topology:
            check, target, url = topology[name].check, topology[name].target, topology[name].url
        else:  # locust, collector: reachable over HTTP (the worker, once its master is)
            check, url = "http", f"http://127.0.0.1:{ports[name.removesuffix('-worker')]}"
            target = url + ("/metrics" if name == "collector" else "/")
        to_start.append(Service(name, argv, check, target, url, env=env))
        test = [_localize(str(t), ports, redis_url) for t in service["healthcheck"]["test"]]
        healthchecks[name] = _healthcheck_argv(test)[0]
    lab = Lab(settings, base_env, tmp_path_factory.mktemp("compose"))
    # the image's working directory holds loadtest/, as the repository's root does
    previous = Path.cwd()
    os.chdir(ROOT)
    try:
        lab.start(to_start, timeout_s=120)
        yield LocalCompose(lab, ports, envs, healthchecks)
    finally:
        # each service stops on its own (no dependencies left to respect): all at once
        with concurrent.futures.ThreadPoolExecutor(len(lab.running) or 1) as pool:
            list(pool.map(lab.stop_service, list(lab.running)))
        lab.stop()
        os.chdir(previous)
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()


def test_every_compose_command_becomes_healthy_by_its_own_healthcheck(
    local_compose: LocalCompose,
) -> None:
    # the launcher's checks passed (lab.start); now the compose file's own, all at once
    with concurrent.futures.ThreadPoolExecutor(len(local_compose.healthchecks)) as pool:
        futures = {
            pool.submit(run_healthcheck, local_compose, name): name
            for name in local_compose.healthchecks
        }
        for future in concurrent.futures.as_completed(futures):
            future.result()
    assert not local_compose.lab.exited()


def test_the_collector_runs_by_its_compose_command(local_compose: LocalCompose) -> None:
    assert "collector" in local_compose.healthchecks
    run_healthcheck(local_compose, "collector")


def _get(url: str, auth: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_flower_asks_for_the_password_but_not_for_its_healthcheck(
    local_compose: LocalCompose,
) -> None:
    flower = f"http://127.0.0.1:{local_compose.ports['flower']}"
    assert _get(f"{flower}/")[0] == 401
    assert _get(f"{flower}/", auth="lab:wrong")[0] == 401
    assert _get(f"{flower}/", auth=FLOWER_AUTH)[0] == 200
    # the healthcheck (compose's and the launcher's) and Prometheus need no password
    assert _get(f"{flower}/healthcheck")[0] == 200
    assert _get(f"{flower}/metrics")[0] == 200


def exported_names(exposition: str) -> set[str]:
    """Every metric name a /metrics page offers, with the suffixes PromQL can use."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
            names |= {family, *(family + s for s in ("_total", "_bucket", "_sum", "_count"))}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    return set(re.findall(r"\b((?:flower|poollab)_[a-z0-9_]+)\b", " ".join(exprs)))


def test_the_dashboard_queries_metrics_that_flower_and_the_collector_export(
    local_compose: LocalCompose,
) -> None:
    wanted = dashboard_metrics()
    flower = _get(f"http://127.0.0.1:{local_compose.ports['flower']}/metrics")[1]
    missing_flower = {m for m in wanted if m.startswith("flower_")} - exported_names(flower)
    assert not missing_flower, f"Flower does not export {sorted(missing_flower)}"
    from_collector = {m for m in wanted if m.startswith("poollab_")}
    collector = _get(f"http://127.0.0.1:{local_compose.ports['collector']}/metrics")[1]
    missing = from_collector - exported_names(collector)
    assert not missing, f"the collector does not export {sorted(missing)}"
