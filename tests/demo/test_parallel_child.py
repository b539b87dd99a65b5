"""The child runs for real in this interpreter (3.11): serial, threads and processes are
timed, and the interpreter pool it lacks is reported, not faked."""

from __future__ import annotations

import json
import subprocess
import sys

from poollab.demo.subproc import child_script

CHILD = str(child_script("parallel_child.py"))


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", CHILD, *args], capture_output=True, text=True, timeout=120
    )


def test_describe_names_this_interpreter() -> None:
    done = _child("describe")
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert described["version"] == ".".join(map(str, sys.version_info[:3]))
    assert described["gil_disabled_build"] is False and described["gil_enabled"] is True
    assert described["interpreter_pool"] is (sys.version_info >= (3, 14))


def test_measure_times_every_kind_it_has_and_names_what_it_lacks() -> None:
    spec = {
        "kinds": ["serial", "threads", "interpreters", "processes"],
        "workers": 2,
        "calls": 4,
        "serial_s": 0.04,
        "repeats": 2,
        "budget_s": 20,
    }
    done = _child("measure", json.dumps(spec))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    rows = {row["kind"]: row for row in answer["rows"]}
    assert set(rows) == {"serial", "threads", "processes"}
    assert "InterpreterPoolExecutor" in answer["missing"]["interpreters"]
    assert rows["serial"]["speedup"] == 1.0 and rows["serial"]["workers"] == 1
    assert rows["threads"]["workers"] == rows["processes"]["workers"] == 2
    assert all(row["seconds"] > 0 for row in rows.values())
    # the GIL: threads of one interpreter never approach 2 cores of pure Python
    assert rows["threads"]["cores_used"] < 1.5
    assert rows["processes"]["cores_used"] is None
    assert set(answer["start_ms"]) == {"threads", "processes"}
    assert answer["calls"] == 4 and answer["iterations_per_call"] >= 1


def test_bad_arguments_are_refused() -> None:
    usage = _child("nope")
    assert usage.returncode == 2 and "usage:" in usage.stderr
    spec = {"kinds": ["fibers"], "workers": 1, "calls": 1, "serial_s": 0.01}
    unknown = _child("measure", json.dumps({**spec, "repeats": 1, "budget_s": 1}))
    assert unknown.returncode != 0 and "fibers" in unknown.stderr
