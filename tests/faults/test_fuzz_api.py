"""The producer API fuzzed from its own OpenAPI document (schemathesis), on a real producer.

``poollab serve producer`` runs as a process on a Redis of the test's own, and schemathesis
sends it requests generated from ``/openapi.json``: valid ones and, as negative cases,
everything the schema forbids. Bounded: at most ``EXAMPLES`` cases per operation (three
operations), each request with a timeout. Every answer must be below 500, and every error a
4xx with a JSON body. ``POOLLAB_MAX_COUNT`` is small so that accepted requests cannot flood
Redis with jobs nobody consumes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from poollab.launcher.redis_server import RedisServer
from tests.faults.conftest import FaultLab, make_lab, running

pytestmark = pytest.mark.faults

# per operation and mode; about 300 requests in all (an operation whose inputs allow
# fewer distinct cases gets fewer)
EXAMPLES = 100
REQUEST_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def producer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultLab]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    with RedisServer() as server:
        fault_lab = make_lab(
            root, server.url + "/0", (), {"POOLLAB_MAX_COUNT": "5"}, with_producer=True
        )
        with running(fault_lab):
            yield fault_lab


def check(case: Any, mode: GenerationMode) -> int:
    response = case.call(timeout=REQUEST_TIMEOUT_S)
    assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), (
            case.as_curl_command(),
            response.headers,
        )
        body = json.loads(response.text)
        assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    elif mode is GenerationMode.NEGATIVE:
        # a request the document forbids was accepted (numbers are strict: no `true` or
        # "3" for a count since pydantic's lax mode was turned off)
        raise AssertionError(f"accepted: {case.as_curl_command()}")
    # the answers also match the document: status codes it lists, bodies of its schemas.
    # Left out: "schema-valid data is accepted" (the document describes `params` as any
    # object while each kind requires its own: sleep needs `ms`, so a schema-valid request
    # is rightly refused with 422) and "schema-violating data is refused" (checked above).
    case.validate_response(
        response, excluded_checks=[positive_data_acceptance, negative_data_rejection]
    )
    status: int = response.status_code
    return status


def fuzz_one(operation: Any, mode: GenerationMode, statuses: Counter[tuple[str, int]]) -> Any:
    """A Hypothesis test of one operation; calling it runs up to EXAMPLES cases."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        # the producer is a real process, slow now and then on a busy machine, and the
        # generated inputs are meant to be large and odd
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        statuses[(operation.label, check(case, mode))] += 1

    return fuzz


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_and_every_error_is_json(producer: FaultLab, mode: GenerationMode) -> None:
    # schemathesis' own pytest plugin (schema.parametrize) does not run under pytest 9 with
    # schemathesis 4.32, so the cases are drawn here with Hypothesis directly
    base = f"http://127.0.0.1:{producer.settings.producer_port}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    statuses: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} >= {"POST /jobs", "GET /jobs/{id}", "GET /healthz"}
    no_negative_case = []
    for operation in operations:
        try:
            fuzz_one(operation, mode, statuses)()
        except Unsatisfiable:
            # an operation without inputs has nothing to get wrong
            no_negative_case.append(operation.label)
    # no parameters at all: nothing a request could get wrong
    assert set(no_negative_case) <= {"GET /healthz"}
    print(f"{mode}: {sum(statuses.values())} requests, {dict(statuses)}")
    assert producer.alive("producer")
    # the fuzz really ran: many requests, and both accepted and refused ones
    assert sum(statuses.values()) >= 100


@pytest.mark.parametrize(
    "job",
    [
        {"kind": "noop", "count": True},
        {"kind": "noop", "count": "3"},
        {"kind": "noop", "count": 2.0},
        {"kind": "sleep", "params": {"ms": True}},
        {"kind": "cpu", "params": {"n": "5"}},
        {"kind": "io", "params": {"ms": 1, "fail_rate": False}},
    ],
)
def test_numbers_must_be_json_numbers(producer: FaultLab, job: dict[str, Any]) -> None:
    base = f"http://127.0.0.1:{producer.settings.producer_port}"
    body = json.dumps({"pool": "solo", **job}).encode()
    request = urllib.request.Request(
        f"{base}/jobs", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 422
