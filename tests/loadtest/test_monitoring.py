"""The monitoring profile: Prometheus's config, Grafana's provisioning and dashboard.

Whether the dashboard's metrics really exist is checked against running services in
tests/test_compose.py (Flower now, the collector as soon as it is part of the build).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROMETHEUS = MONITORING / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "poollab.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"


def _compose_services() -> dict[str, dict[str, object]]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (prometheus) not installed")
def test_prometheus_config_passes_promtool() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_collector_and_flower_where_compose_runs_them() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["poollab-collector"] == ["collector:8002"]
    assert targets["flower"] == ["flower:5555"]
    services = _compose_services()
    assert "--port" in services["collector"]["command"]  # type: ignore[operator]
    assert "--port=5555" in services["flower"]["command"]  # type: ignore[operator]
    mounts = services["prometheus"]["volumes"]
    assert "./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts  # type: ignore[operator]


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard() -> None:
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "poollab.yml").read_text())
    (dashboards,) = provider["providers"]
    grafana = _compose_services()["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}  # type: ignore[attr-defined]
    assert mounts["./monitoring/grafana/dashboards"] == dashboards["options"]["path"]
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]  # type: ignore[index]
    assert home == f"{dashboards['options']['path']}/{DASHBOARD.name}"

    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    # what the lab compares: throughput, latency and memory, per pool
    for word in ("throughput", "latency", "memory", "cpu"):
        assert word in titles


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (prometheus) not installed")
def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    # as recording rules, promtool parses every expression ($__rate_interval is Grafana's)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"poollab:dashboard_query_{i}", "expr": e}
                    for i, e in enumerate(re.sub(r"\$__rate_interval", "1m", x) for x in exprs)
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
