"""Redis stopped mid-run and started again: every job the producer accepted completes.

Redis here persists (append-only file, kept in a directory of the test's) and comes back on
the same port, as a restarted server or container would. While it is down the producer
answers 503 with ``Retry-After`` on every route that needs it, ``/healthz`` included; the
workers and the producer reconnect by themselves once it is back. Jobs running when it went
down finish, wait (the result backend retries) and are acknowledged after the reconnect.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from poollab.launcher.redis_server import RedisServer, free_port
from poollab.settings import CELERY_POOLS
from tests.faults.conftest import make_lab, running, wait_until

pytestmark = pytest.mark.faults

# longer than the outage and the reconnect together: a job is delivered twice only if its
# acknowledgement was really lost, never because the outage outlasted the timeout
OUTAGE_ENV = {"POOLLAB_VISIBILITY_TIMEOUT": "30", "POOLLAB_RESTORE_INTERVAL_S": "1"}
OUTAGE_S = 5.0


def call(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, method=method, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_jobs_accepted_before_and_after_a_redis_restart_all_complete(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis-data"
    data_dir.mkdir()
    server = RedisServer(port=free_port(), persistent=True, data_dir=data_dir).start()
    try:
        lab = make_lab(tmp_path, server.url + "/0", CELERY_POOLS, OUTAGE_ENV, with_producer=True)
        base = f"http://127.0.0.1:{lab.settings.producer_port}"
        with running(lab):
            accepted: dict[str, str] = {}
            for pool in CELERY_POOLS:
                body = {"pool": pool, "kind": "sleep", "params": {"ms": 700}, "count": 6}
                status, _, answer = call("POST", f"{base}/jobs", body)
                assert status == 202, answer
                accepted.update(dict.fromkeys(answer["ids"], pool))
            # some jobs running, the rest queued, when Redis goes
            wait_until(
                lambda: all(sum(lab.runs(p).received.values()) for p in CELERY_POOLS),
                "every pool running jobs",
            )
            server.stop()
            in_flight = {
                i for pool in CELERY_POOLS for i in lab.runs(pool).received if i in accepted
            }

            down_since = time.monotonic()
            job_id = next(iter(accepted))
            requests: list[tuple[str, str, Any]] = [
                ("POST", "/jobs", {"pool": "solo", "kind": "noop", "count": 1}),
                ("GET", f"/jobs/{job_id}", None),
                ("GET", "/healthz", None),
            ]
            while time.monotonic() - down_since < OUTAGE_S:
                for method, path, body in requests:
                    status, headers, answer = call(method, base + path, body)
                    assert status == 503, (path, status, answer)
                    assert int(headers["Retry-After"]) > 0
                    assert answer["error"] == "broker unavailable"
                    assert answer.get("ids", []) == []  # nothing was half-published

            server.start()
            # the producer reconnects on its own: the first request after the restart that
            # finds Redis answering is accepted
            wait_until(lambda: call("GET", f"{base}/healthz")[0] == 200, "producer healthy")
            for pool in CELERY_POOLS:
                body = {"pool": pool, "kind": "sleep", "params": {"ms": 50}, "count": 3}
                status, _, answer = call("POST", f"{base}/jobs", body)
                assert status == 202, answer
                accepted.update(dict.fromkeys(answer["ids"], pool))

            metas = lab.wait_results(list(accepted), timeout_s=120)
            lost = sorted(
                (accepted[i], i) for i in accepted if metas.get(i, {}).get("status") != "SUCCESS"
            )
            duplicates = {
                pool: sorted(i for i, n in lab.runs(pool).succeeded.items() if n > 1)
                for pool in CELERY_POOLS
            }
            print(
                f"{len(accepted)} jobs accepted, {len(in_flight)} in flight at the outage, "
                f"lost {lost}, ran twice {duplicates}"
            )
            assert lost == []
            for pool in CELERY_POOLS:
                assert lab.alive(lab.service_name(pool)), lab.log(lab.service_name(pool))[-3000:]
                log = lab.log(lab.service_name(pool))
                assert "Unrecoverable error" not in log
            # the acks of jobs that ran through the outage reached Redis after it came back:
            # nothing stays parked for a second delivery
            wait_until(lambda: lab.db.hlen("unacked") == 0, "every job acknowledged", 15)
            # at least once, not exactly once: a job can run twice only if it was delivered
            # before the outage (kombu puts a closing channel's held jobs back when it can
            # reach Redis); none accepted after it, or still queued during it, ran twice
            assert {i for ids in duplicates.values() for i in ids} <= in_flight
    finally:
        server.stop()
