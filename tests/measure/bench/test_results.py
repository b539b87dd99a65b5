"""A small benchmark on real Redis and real workers: results.json agrees with the jobs."""

from __future__ import annotations

import json
import math

import pytest
import redis

from poollab.measure.bench.results import FORMAT, load_results
from poollab.timings import JobTiming
from tests.measure.bench.conftest import JOBS, POOLS, WORKLOADS, SmallRun

CELL_FIELDS = {
    "pool", "workload", "concurrency", "mode", "profile", "jobs", "completed", "failed",
    "duration_s", "throughput_per_s", "latency_ms", "queue_wait_ms", "rss_mb", "uss_mb",
    "cpu_cores", "ceiling_per_s", "efficiency", "bound",
}  # fmt: skip


def test_results_json_has_a_cell_per_pool_workload_and_mode(small_run: SmallRun) -> None:
    data = json.loads((small_run.out / "results.json").read_text())
    assert data["format"] == FORMAT
    cells = data["cells"]
    assert {(c["pool"], c["workload"], c["mode"]) for c in cells} == {
        (p, w, m) for p in POOLS for w in WORKLOADS for m in ("drain", "live")
    }
    for cell in cells:
        assert set(cell) >= CELL_FIELDS, CELL_FIELDS - set(cell)
        assert set(cell["latency_ms"]) == {"p50", "p95", "p99", "max"}
        assert set(cell["queue_wait_ms"]) == {"p50", "p95", "p99"}
        assert set(cell["rss_mb"]) == set(cell["uss_mb"]) == {"idle", "peak", "mean"}
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["python"].startswith("3.")
    assert machine["libraries"]["celery"] and machine["cpu_model"]
    assert data["config"]["pools"] == list(POOLS)
    assert data["profiles"]["tuned"]["worker_options"]


def test_results_json_reads_back_exactly(small_run: SmallRun) -> None:
    path = small_run.out / "results.json"
    data = json.loads(path.read_text())
    run = load_results(path)
    assert run.to_json() == data
    assert run.to_json() == small_run.results.to_json()
    # the same bytes, key order included: --report-from rewrites nothing
    assert json.dumps(run.to_json(), indent=2) + "\n" == path.read_text()


def test_every_job_sent_is_counted_once(small_run: SmallRun) -> None:
    for cell in small_run.results.cells:
        assert cell.jobs == JOBS
        assert cell.completed + cell.failed == cell.jobs, cell
        assert cell.failed == 0 and cell.lost == 0


def _own_timings(client: redis.Redis, raw_path: str, small_run: SmallRun) -> list[JobTiming]:
    """The jobs' timings as the workers stored them, read back from Redis by id."""
    ids = [json.loads(line)[0] for line in (small_run.out / raw_path).read_text().splitlines()]
    metas = [json.loads(client.get(f"celery-task-meta-{task_id}") or "null") for task_id in ids]
    assert all(meta and meta["status"] == "SUCCESS" for meta in metas)
    return [JobTiming.from_envelope(meta["result"]) for meta in metas]


def test_throughput_agrees_with_the_jobs_own_timings(small_run: SmallRun) -> None:
    client = redis.Redis.from_url(small_run.broker_url)
    for cell in small_run.results.cells:
        timings = _own_timings(client, cell.raw, small_run)
        start, end = cell.window
        if cell.mode == "live":
            # end to end: completed / (last finish − first send)
            first_sent = min(t.sent for t in timings if t.sent is not None)
            expected = len(timings) / (max(t.finished for t in timings) - first_sent)
        else:
            # drain: the jobs the released consumer started, over its own span
            released = [t for t in timings if t.started >= start]
            assert len(released) == cell.completed - cell.early
            assert min(t.started for t in released) == pytest.approx(start, abs=1e-3)
            expected = len(released) / (max(t.finished for t in timings) - start)
        assert cell.throughput_per_s == pytest.approx(expected, rel=0.01), cell.raw
        assert end == pytest.approx(max(t.finished for t in timings), abs=1e-3)


def test_memory_agrees_with_psutil_read_independently(small_run: SmallRun) -> None:
    readings = small_run.readings
    for cell in small_run.results.cells:
        idle_rss, idle_uss, _ = readings.idle[cell.pool]
        after = readings.after[(cell.pool, cell.workload, cell.mode)]
        after_rss, after_uss, after_pss = after
        assert cell.rss_mb.idle == pytest.approx(idle_rss, rel=0.1), cell.pool
        assert cell.uss_mb.idle == pytest.approx(idle_uss, rel=0.1), cell.pool
        # read right after the cell, with nothing running: what the last samples saw
        assert cell.rss_mb.peak == pytest.approx(after_rss, rel=0.1), cell
        assert cell.uss_mb.peak == pytest.approx(after_uss, rel=0.1), cell
        assert cell.pss_mb.peak == pytest.approx(after_pss, rel=0.1), cell
        # a shared page: once per process (RSS), split between sharers (PSS), left out (USS)
        assert cell.uss_mb.peak <= cell.pss_mb.peak <= cell.rss_mb.peak
        assert cell.rss_mb.mean <= cell.rss_mb.peak
        assert cell.samples >= 1
    prefork = next(c for c in small_run.results.cells if c.pool == "prefork")
    solo = next(c for c in small_run.results.cells if c.pool == "solo")
    # prefork's tree is its main process and two children
    assert prefork.procs == 3 and solo.procs == 1


def test_ceilings_are_physical_bounds_no_cell_exceeds(small_run: SmallRun) -> None:
    """Every ceiling known, from the bodies timed in a bare loop; no cell above it.

    An upper bound on efficiency only: a slow or busy machine lowers throughput, never
    raises it past a ceiling that does not depend on the consumers.
    """
    results = small_run.results
    refs = results.references
    assert set(refs.bodies) == set(WORKLOADS)
    for body in refs.bodies.values():
        assert body.cpu_ms > 0 and body.jobs >= 1
    cells = {(c.pool, c.workload, c.mode): c for c in results.cells}
    cores = results.machine.cores
    cpu_s = refs.body_cpu_s("cpu")
    prefork_cpu = cells[("prefork", "cpu", "drain")]
    assert prefork_cpu.ceiling_per_s == pytest.approx(min(cores, 2) / cpu_s, rel=1e-3)
    threads_io = cells[("threads", "io", "drain")]
    io_slots = 8 / (0.020 + refs.body_cpu_s("io"))
    io_cores = 1 / refs.body_cpu_s("io")
    assert threads_io.ceiling_per_s == pytest.approx(min(io_slots, io_cores), rel=1e-3)
    for cell in results.cells:
        where = (cell.pool, cell.workload, cell.mode, cell.throughput_per_s, cell.ceiling_per_s)
        assert cell.bound != "unknown" and math.isfinite(cell.ceiling_per_s), where
        assert cell.efficiency == pytest.approx(
            cell.throughput_per_s / cell.ceiling_per_s, rel=1e-3
        )
        assert cell.efficiency <= 1.1, where
        if cell.mode == "live":
            assert cell.ceiling_per_s <= cell.offered_per_s
        assert math.isfinite(cell.cpu_cores) and cell.cpu_cores >= 0
        assert (cell.pathology is not None) == (cell.efficiency < 0.25), where
    solo = cells[("solo", "noop", "drain")]
    assert solo.x_solo == 1.0


def test_the_workers_count_every_job_they_ran(small_run: SmallRun) -> None:
    """The samples carry the jobs counted in the workers, prefork's children included."""
    from poollab.hooks.sampler import FIELD, Sample, stream_key

    client = redis.Redis.from_url(small_run.broker_url)
    for pool in POOLS:
        entries = client.xrange(stream_key(pool))
        samples = [Sample.from_json(fields[FIELD.encode()]) for _, fields in entries]
        last = max(samples, key=lambda s: (s.t, s.seq))
        assert last.failed == 0
        # every cell's jobs plus its warm-up ran on this worker
        ran = sum(c.jobs for c in small_run.results.cells if c.pool == pool)
        assert last.succeeded is not None and last.succeeded >= ran, (pool, last)


def test_each_cell_carries_its_steady_state_and_its_processes_cpu(small_run: SmallRun) -> None:
    """Steady state from the raw starts, flagged short against --cell-s; CPU per job of the
    main process apart from its children, read from /proc by the bench."""
    cell_s = small_run.results.config.cell_s
    for cell in small_run.results.cells:
        starts = sorted(json.loads(line)[3] for line in (small_run.out / cell.raw).read_text()
                        .splitlines())  # fmt: skip
        full = starts[min(cell.concurrency, len(starts)) - 1]
        assert cell.steady_s == pytest.approx(starts[-1] - full, abs=1e-3), cell.raw
        # 40 jobs a cell: never 3 s of steady state, and the figure says so
        assert cell.steady_s < cell_s
        assert cell.short == f"steady state {cell.steady_s:.2f} s < cell_s {cell_s:g} s"
        split = cell.cpu_ms_per_job
        assert math.isfinite(split.main_ms) and split.main_ms > 0, cell.raw
    by = {(c.pool, c.workload, c.mode): c for c in small_run.results.cells}
    for mode in ("drain", "live"):
        prefork, solo = by[("prefork", "cpu", mode)], by[("solo", "cpu", mode)]
        # prefork's children ran the jobs; solo has none
        assert prefork.cpu_ms_per_job.children == 2
        body_ms = small_run.results.references.body_cpu_s("cpu") * 1000
        assert prefork.cpu_ms_per_job.children_ms >= 0.8 * body_ms
        assert solo.cpu_ms_per_job.children == 0 and solo.cpu_ms_per_job.children_ms == 0
        assert solo.cpu_ms_per_job.main_ms >= 0.8 * body_ms
