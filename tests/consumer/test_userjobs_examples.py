"""The example job modules (examples/) registered through POOLLAB_JOBS and run by the real
asyncio consumer: each returns what the same function returns when called here."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from poollab import userjobs
from poollab.producer.publish import wait_for
from poollab.settings import get_settings
from tests.consumer.conftest import ConsumerFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODULES = ("hash_chunks", "pure_python", "fetch_parse", "pipeline")


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch, upstream_url: str) -> Iterator[dict[str, Any]]:
    """The example modules, imported here as the consumer imports them."""
    monkeypatch.setattr(sys, "path", [str(EXAMPLES), *sys.path])
    monkeypatch.setenv("POOLLAB_UPSTREAM_URL", upstream_url)
    get_settings.cache_clear()
    yield userjobs.by_spec(userjobs.load_modules(MODULES))
    get_settings.cache_clear()
    for name in MODULES:
        sys.modules.pop(name, None)


def test_every_example_defines_documented_public_jobs(examples: dict[str, Any]) -> None:
    assert sorted(examples) == [
        "fetch_parse:fetch_and_parse",
        "hash_chunks:digest",
        "pipeline:fetch_compress_sum",
        "pure_python:count_primes",
    ]
    assert [spec for spec, job in examples.items() if job.is_async] == [
        "fetch_parse:fetch_and_parse"
    ]
    for name in MODULES:
        doc = sys.modules[name].__doc__ or ""
        assert "POOLLAB_JOBS=" in doc and len(doc) > 300, name


CASES: list[tuple[str, dict[str, Any]]] = [
    ("hash_chunks:digest", {"mb": 2, "rounds": 2}),
    ("pure_python:count_primes", {"limit": 1000}),
    ("fetch_parse:fetch_and_parse", {"ms": 10, "kb": 4}),
    ("pipeline:fetch_compress_sum", {"ms": 5, "kb": 8, "rounds": 1}),
]


def test_the_examples_run_on_the_asyncio_consumer(
    start_consumer: ConsumerFactory,
    consumer_env: dict[str, str],
    client: Celery,
    examples: dict[str, Any],
) -> None:
    env = {**consumer_env, "POOLLAB_JOBS": ",".join(MODULES), "PYTHONPATH": str(EXAMPLES)}
    start_consumer(env, "-c", "8", "--cpu-workers", "1")
    ids = {
        client.send_task(examples[spec].task_name, kwargs=params, queue="asyncio").id: (
            spec,
            params,
        )
        for spec, params in CASES
    }
    metas = wait_for(client, list(ids), timeout=60)
    for task_id, (spec, params) in ids.items():
        meta = metas[task_id]
        assert meta["status"] == "SUCCESS", (spec, meta)
        assert meta["result"]["value"] == userjobs.run_blocking(examples[spec], params), spec
    values = {spec: metas[i]["result"]["value"] for i, (spec, _) in ids.items()}
    assert values["pure_python:count_primes"] == {"count": 168, "largest": 997}
    assert values["fetch_parse:fetch_and_parse"] == {"status": 200, "records": 256, "bytes": 4096}
    data = bytes(range(256)) * (2 * 4096)
    first = hashlib.sha256(data).digest()
    assert values["hash_chunks:digest"]["sha256"] == hashlib.sha256(first + data).hexdigest()
