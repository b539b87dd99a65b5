"""Every verdict sentence, from its template, on constructed runs: the words and the figures."""

from __future__ import annotations

import math
import re
from dataclasses import replace

from poollab.measure.bench.ceilings import Pathology, UserCalibration
from poollab.measure.bench.report.explain import cpu_note, why_not_parallel
from poollab.measure.bench.report.models import cores_usable, execution_model
from poollab.measure.bench.report.verdict import executor_note, recommendation, workload_verdict
from poollab.measure.bench.results import (
    BenchCell,
    ConsumerCommand,
    Contention,
    CpuPerJob,
    MemoryMb,
    apply_ceilings,
)
from tests.measure.bench.factory import REFS, make_cell, make_run

CONSUMER = ["poollab", "consume", "-c", "2", "--loop", "uvloop", "-n", "asyncio@%h"]


def cpu_cell(pool: str, c: int, rate: float, uss: float, **changes: object) -> BenchCell:
    command = ConsumerCommand(CONSUMER if pool == "asyncio" else ["celery", "worker"], {})
    cell = make_cell(
        pool=pool, concurrency=c, workload="cpu", params={"n": 100_000},
        throughput_per_s=rate, uss_mb=MemoryMb(uss - 5, uss, uss - 1), command=command,
        contention=Contention(1.0, 0.05, 0.9, 0.05),
    )  # fmt: skip
    return replace(cell, **changes)  # type: ignore[arg-type]


def assert_clean(sentence: str) -> None:
    """Reads as a sentence: no hole left by a missing figure, no doubled or dangling marks."""
    assert sentence.endswith("."), sentence
    for bad in ("nan", "None", "  ", " .", "..", " ,", ",.", "()", "( ", " )"):
        assert bad not in sentence, (bad, sentence)
    assert sentence.count("(") == sentence.count(")"), sentence
    assert not re.search(r"\{|\}", sentence), sentence


def test_each_configuration_says_what_it_ran_its_jobs_on() -> None:
    def model(pool: str, c: int, workload: str = "cpu", argv: list[str] | None = None) -> str:
        command = ConsumerCommand(argv or ["celery", "worker"], {})
        return execution_model(make_cell(pool=pool, concurrency=c, workload=workload,
                                         command=command), REFS)  # fmt: skip

    assert model("prefork", 2) == "2 processes"
    assert model("prefork", 1) == "1 process"
    assert model("threads", 16) == "16 threads in one process (one GIL)"
    assert model("gevent", 100) == "100 greenlets on one thread"
    assert model("solo", 1) == "one thread"
    # the consumer's executor: its default (processes, as many as the machine's CPUs) ...
    assert model("asyncio", 100, argv=CONSUMER) == "one event loop + a 2-process CPU executor"
    # ... or what its command chose; jobs without CPU work never reach it
    thread = [*CONSUMER, "--cpu-executor", "thread", "--cpu-workers", "4"]
    assert model("asyncio", 2, argv=thread) == (
        "one event loop + a 4-thread CPU executor (one GIL)"
    )
    inline = [*CONSUMER, "--cpu-executor", "inline"]
    assert model("asyncio", 2, argv=inline) == "one event loop, CPU work inline on the loop"
    assert model("asyncio", 100, "io", CONSUMER) == "one event loop, up to 100 tasks at once"


def cpu_run(*cells: BenchCell) -> list[BenchCell]:
    chosen = list(cells)
    apply_ceilings(chosen, REFS)
    return chosen


def test_cpu_jobs_are_compared_at_the_cores_each_configuration_could_use() -> None:
    # a 10 ms body on 2 cores: 100/s on one core, 200/s on two
    chosen = cpu_run(
        cpu_cell("solo", 1, 90.0, 40.0),
        cpu_cell("threads", 2, 80.0, 42.0),
        cpu_cell("prefork", 2, 170.0, 90.0),
        cpu_cell("asyncio", 2, 160.0, 70.0),
    )
    run = make_run(chosen)
    lines = workload_verdict(run, "cpu")
    for line in lines:
        assert_clean(line)
    assert lines[0].startswith("For CPU jobs (n=100,000, ≈ 10.0 ms of CPU each in a bare loop), "
                               "**prefork at c=2** — 2 processes — was fastest: 170 jobs/s "
                               "(85% of its cores-bound ceiling of 200/s)")  # fmt: skip
    assert (
        "CPU work on one core: solo c=1 — one thread — 90 jobs/s, 90% of its ceiling; "
        "threads c=2 — 2 threads in one process (one GIL) — 80 jobs/s, 80% of its ceiling. "
        "Best of these: solo c=1."
    ) in lines
    assert (
        "CPU work on 2 cores: prefork c=2 — 2 processes — 170 jobs/s, 85% of its ceiling; "
        "asyncio c=2 — one event loop + a 2-process CPU executor — 160 jobs/s, 80% of its "
        "ceiling. Best of these: prefork c=2."
    ) in lines
    assert (
        "Against solo (90 jobs/s): prefork 1.89× (c=2), threads 0.89× (c=2), asyncio 1.78× (c=2)."
        in lines
    )

    # within 10% of prefork on less memory: the asyncio consumer, and what it is comparable with
    pick = recommendation(run, "cpu")
    assert pick is not None
    assert_clean(pick)
    assert pick.startswith(
        "cpu: **asyncio -c 2** — one event loop + a 2-process CPU executor — within 10% of "
        "the fastest (prefork c=2) on less memory: 160 jobs/s, 70 MB USS."
    )
    assert (
        "Its CPU work ran in a 2-process pool beside the event loop: this compares with "
        "prefork's processes, not with one event loop running the jobs itself."
    ) in pick
    assert pick.endswith(
        "Caveats: one run per cell, so the noise between runs was not measured (`--repeat 3`)."
    )


def test_the_caveats_name_flags_a_busy_machine_short_cells_and_noise() -> None:
    stall = Pathology("cores", "stall", "no job ran 99% of the time")
    chosen = [
        cpu_cell("solo", 1, 90.0, 40.0, steady_s=0.4),
        cpu_cell("gevent", 2, 1.0, 41.0),
        cpu_cell(
            "prefork",
            2,
            95.0,
            90.0,
            throughput_spread=0.2,
            contention=Contention(1.9, 0.05, 0.9, 0.95),
        ),
    ]
    # the flag and the short figure as the run derives them (cell_s 1 s)
    apply_ceilings(chosen, REFS, cell_s=1.0)
    chosen[1].pathology = stall
    run = make_run(chosen)
    pick = recommendation(run, "cpu")
    assert pick is not None
    assert_clean(pick)
    # solo is within 10% of prefork on less memory; each caveat from its own template
    assert pick.startswith("cpu: **solo -c 1** — one thread — within 10% of the fastest")
    assert "flagged ⚠ below 25% of their ceiling: gevent c=2" in pick
    # like with like: a one-core pick beside a two-core fastest says how far apart they can be
    assert (
        "Caveats: solo c=1 can use one core for its CPU work and prefork c=2 2: their ceilings "
        "are 100/s and 200/s, so on a machine with its cores free the gap can grow that far;"
    ) in pick
    assert (
        "other programs used more than 0.35 cores during prefork c=2 (0.95): those rates are "
        "lower than this machine can do"
    ) in pick
    assert "short cells: solo c=1 (steady state 0.40 s < cell_s 1 s)" in pick
    # solo has no repeats; with them, a gap inside the spread is called even
    assert "one run per cell" in pick
    chosen[0].throughput_spread = 0.1
    again = recommendation(make_run(chosen), "cpu")
    assert again is not None
    assert "solo c=1's repeats spread 10%, more than its 6% gap to prefork c=2: call" in again
    lines = workload_verdict(run, "cpu")
    for line in lines:
        assert_clean(line)
    assert (
        "Too short to be sure of (their rate includes ramping up and down): solo c=1 drain "
        "(steady state 0.40 s < cell_s 1 s)." in lines
    )
    flagged_pick = recommendation(make_run([replace(chosen[1], pathology=stall)]), "cpu")
    assert flagged_pick is not None
    assert "gevent c=2 itself is flagged ⚠ (stall: no job ran 99% of the time)" in flagged_pick


def test_the_cpu_notes_say_where_the_cpu_went_from_the_per_process_figures() -> None:
    solo = cpu_cell("solo", 1, 90.0, 40.0, cpu_ms_per_job=CpuPerJob(11.0, 0.0, 0))
    prefork = cpu_cell("prefork", 2, 140.0, 90.0, cpu_ms_per_job=CpuPerJob(3.0, 10.5, 2))
    threads = cpu_cell("threads", 2, 60.0, 42.0, cpu_ms_per_job=CpuPerJob(15.0, 0.0, 0))
    note = cpu_note(prefork, REFS, solo)
    assert note == (
        "prefork c=2: its main process spent 3.00 ms of CPU per job taking jobs, handing them "
        "to its children and back (30% of the job's own 10.00 ms), the children 10.50 ms per "
        "job. Both compete for the machine's 2 cores: 13.50 ms of CPU per job allow at most "
        "148 jobs/s, where the 2-core bound alone says 200."
    )
    assert cpu_note(threads, REFS, solo) == (
        "threads c=2: 15.00 ms of CPU per job in its one process for a body of 10.00 ms: "
        "5.00 ms per job (50% of the body) went to the consumer's own path, 4.00 ms more than "
        "solo's 11.00 ms, so its one core allows at most 67 jobs/s."
    )
    # a path as costly as solo's: the threads added nothing worth a word
    solo_like = replace(solo, cpu_ms_per_job=CpuPerJob(11.5, 0.0, 0))
    assert cpu_note(replace(threads, cpu_ms_per_job=CpuPerJob(12.6, 0.0, 0)), REFS, solo_like) == (
        "threads c=2: 12.60 ms of CPU per job in its one process for a body of 10.00 ms: "
        "2.60 ms per job (26% of the body) went to the consumer's own path, as much as solo's "
        "11.50 ms, so its one core allows at most 79 jobs/s."
    )
    # a small share, an unmeasured split or a body of almost no CPU: no note
    assert cpu_note(replace(prefork, cpu_ms_per_job=CpuPerJob(1.0, 10.5, 2)), REFS, solo) is None
    assert (
        cpu_note(replace(prefork, cpu_ms_per_job=CpuPerJob(math.nan, math.nan, 0)), REFS, solo)
        is None
    )
    assert cpu_note(replace(threads, workload="noop"), REFS, None) is None


def test_prefork_below_one_and_a_half_solo_is_explained_by_the_machine_or_its_own_cpu() -> None:
    solo = cpu_cell("solo", 1, 90.0, 40.0)
    busy = cpu_cell("prefork", 2, 110.0, 90.0, cpu_ms_per_job=CpuPerJob(2.0, 10.5, 2),
                    contention=Contention(2.0, 0.05, 1.1, 0.8))  # fmt: skip
    (line,) = why_not_parallel([solo, busy], solo, REFS, busy_cores=0.35)
    assert_clean(line)
    assert line == (
        "prefork c=2 (2 cores for its CPU work) did 1.22× solo, below the 1.5× two cores "
        "should give: other programs used 0.80 of the 2 cores during its cell (0.05 during "
        "solo's); it needed 12.50 ms of CPU per job (main process 2.00, children 10.50), so "
        "the 1.20 cores left allowed at most 96 jobs/s, 1.07× solo: the machine, not the "
        "pool, held it back."
    )
    own = replace(busy, contention=Contention(2.0, 0.05, 1.9, 0.05),
                  cpu_ms_per_job=CpuPerJob(5.0, 11.0, 2))  # fmt: skip
    (line,) = why_not_parallel([own], solo, REFS, busy_cores=0.35)
    assert_clean(line)
    assert line.endswith(
        "allowed at most 122 jobs/s, 1.35× solo: its own CPU per job held it back."
    )
    fast = replace(busy, throughput_per_s=170.0)
    assert why_not_parallel([fast, solo], solo, REFS, busy_cores=0.35) == []


def test_a_tiny_share_of_the_ceiling_keeps_two_significant_digits() -> None:
    noop = [make_cell(throughput_per_s=650.0, pool="gevent", concurrency=100)]
    apply_ceilings(noop, REFS)
    (line, *_) = workload_verdict(make_run(noop), "noop")
    assert_clean(line)
    # 650/s against a 1 µs body's 1,000,000/s
    assert "(0.065% of its cores-bound ceiling of 1,000,000/s)" in line


def test_a_job_callable_on_the_asyncio_consumer_is_described_where_it_ran() -> None:
    def calibration(is_async: bool) -> UserCalibration:
        return UserCalibration(
            params={}, is_async=is_async, jobs=10, cpu_ms=5.0, cpu_ms_mean=5.0,
            thread_cpu_ms=5.0, wall_ms=5.0, wall_ms_mean=5.0, cpu_share=1.0, threads=2,
            thread_speedup=1.9, thread_overlap=0.9,
        )  # fmt: skip

    refs = replace(REFS, user={"plain": calibration(False), "coro": calibration(True)})
    command = ConsumerCommand(CONSUMER, {})
    plain = make_cell(pool="asyncio", concurrency=100, workload="plain", command=command)
    coro = make_cell(pool="asyncio", concurrency=100, workload="coro", command=command)
    # a plain function goes to the consumer's executor, an async one is awaited on its loop
    assert execution_model(plain, refs) == "one event loop + a 2-process CPU executor"
    assert execution_model(coro, refs) == "one event loop, up to 100 tasks at once"
    assert cores_usable(plain, refs) == 2
    assert cores_usable(coro, refs) == 1
    note = executor_note(plain, refs)
    assert note is not None and "2-process pool" in note
    assert executor_note(coro, refs) is None
