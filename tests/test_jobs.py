"""The job catalogue: both variants of every kind agree, and bad params are refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from poollab import jobs


def _blocking_context() -> jobs.BlockingContext:
    def http_get(url: str, timeout_s: float) -> tuple[int, bytes]:
        # unit level: stands in for the upstream, which integration tests call for real
        assert "/delay?ms=" in url
        return 200, b""

    return jobs.BlockingContext(upstream_url="http://upstream.invalid", http_get=http_get)


def _async_context() -> jobs.AsyncContext:
    async def http_get(url: str, timeout_s: float) -> tuple[int, bytes]:
        return 200, b""

    async def run_cpu(func: Any, n: int) -> int:
        return int(func(n))

    return jobs.AsyncContext("http://upstream.invalid", http_get, run_cpu)


CASES: list[tuple[str, dict[str, Any]]] = [
    ("noop", {"x": {"a": [1, 2]}}),
    ("sleep", {"ms": 5}),
    ("cpu", {"n": 1000}),
    ("io", {"ms": 1}),
    ("mixed", {"n": 500, "ms": 1}),
]


@pytest.mark.parametrize(("kind", "params"), CASES)
def test_blocking_and_async_variants_return_the_expected_value(
    kind: str, params: dict[str, Any]
) -> None:
    job = jobs.CATALOGUE[kind]
    parsed = job.validate(params)
    blocking = job.run(_blocking_context(), parsed)
    asynchronous = asyncio.run(job.run_async(_async_context(), parsed))
    assert blocking == asynchronous == jobs.expected_value(kind, params)


def test_cpu_work_is_deterministic_and_depends_on_n() -> None:
    assert jobs.cpu_work(10) == jobs.cpu_work(10)
    assert jobs.cpu_work(10) != jobs.cpu_work(11)
    assert 0 <= jobs.cpu_work(1000) < 2**64


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("sleep", {}, "ms"),
        ("sleep", {"ms": -1}, "ms"),
        ("cpu", {"n": 0}, "n"),
        ("cpu", {"n": "many"}, "n"),
        ("io", {"ms": 10, "fail_rate": 2}, "fail_rate"),
        ("noop", {"y": 1}, "y"),
    ],
)
def test_bad_params_raise_a_job_error_naming_the_field(
    kind: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(jobs.JobError, match=field):
        jobs.CATALOGUE[kind].validate(params)


def test_an_upstream_error_status_fails_the_io_job() -> None:
    def failing(url: str, timeout_s: float) -> tuple[int, bytes]:
        return 500, b"{}"

    ctx = jobs.BlockingContext("http://upstream.invalid", failing)
    with pytest.raises(jobs.UpstreamError, match="500"):
        jobs.io(ctx, jobs.IoParams(ms=1))


def test_envelope_carries_timings_in_order() -> None:
    result = jobs.envelope(42, "solo", sent=1.0, started=2.0)
    assert result["value"] == 42
    assert result["pool"] == "solo"
    assert result["timings"]["sent"] == 1.0
    assert result["timings"]["finished"] >= result["timings"]["started"] == 2.0
