"""Re-running the measurements whose summaries are committed under docs/results/.

Each runner starts the measurement as the docs quote it, in a subprocess from the
repository's root, lets its progress through to stderr, and writes the summary file. Every
measurement is bounded by its own sizes and time-outs; ``quick`` picks small sizes.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from poollab.demo import registry
from poollab.demo.background import BackgroundLoad
from poollab.demo.result import Row
from poollab.measure.claims import faults, summary
from poollab.measure.claims.paths import RESULTS

# an experiment may take a few minutes in full mode; past this it is stuck
DEMO_TIMEOUT_S = 900.0
PEERS_TIMEOUT_S = 3600.0


def _log(message: str) -> None:
    print(f"[claims] {message}", file=sys.stderr, flush=True)


def run_talk(root: Path, quick: bool, names: list[str] | None = None) -> None:
    chosen = names or list(registry.NAMES)
    failed = []
    for index, name in enumerate(chosen, 1):
        _log(f"talk {index}/{len(chosen)}: poollab demo {name}")
        argv = [sys.executable, "-m", "poollab.cli", "demo", name, "--json", "--no-chart"]
        argv += ["--quick"] if quick else []
        # stdout is the JSON; the demo's progress bars go through on stderr
        out = subprocess.run(
            argv, cwd=root, stdout=subprocess.PIPE, text=True, timeout=DEMO_TIMEOUT_S, check=False
        )
        if out.returncode != 0 or not out.stdout.strip():
            # one broken experiment must not cost the others their run
            _log(f"talk {name}: exited {out.returncode}; its committed run is left as it was")
            failed.append(name)
            continue
        document = json.loads(out.stdout)
        document["recorded"] = summary.today()
        path = root / RESULTS / "talk" / f"{name}.json"
        if keeps_committed_run(path, document):
            _log(f"talk {name}: skipped on this interpreter; the committed run is kept")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1) + "\n")
        _log(f"talk {name}: {document['results'][0]['verdict']} -> {path.relative_to(root)}")
    if failed:
        raise RuntimeError(f"poollab demo failed for: {', '.join(failed)}")


def keeps_committed_run(path: Path, document: Mapping[str, Any]) -> bool:
    """A skip (this interpreter cannot run it) never replaces a run made where it could."""
    results = document.get("results")
    skipped = isinstance(results, list) and results and results[0].get("verdict") == "skipped"
    if not skipped or not path.is_file():
        return False
    committed = json.loads(path.read_text())["results"][0]
    return bool(committed.get("verdict") != "skipped")


def run_peers(root: Path, quick: bool) -> None:
    jobs, repeat = ("2000", "1") if quick else ("10000", "3")
    sizes = ["--noop-jobs", jobs, "--io-jobs", jobs, "--repeat", repeat]
    target = RESULTS / "peers" / "peers.json"
    argv = [sys.executable, "-m", "poollab.measure.peers", *sizes, "--run-timeout", "30"]
    argv += ["--summary", str(target)]
    _log("peers: " + " ".join(argv[1:]))
    subprocess.run(argv, cwd=root, timeout=PEERS_TIMEOUT_S, check=True)


def run_overhead(root: Path, quick: bool) -> None:
    sizes = ["--jobs", "1000", "--repeat", "1"] if quick else ["--jobs", "3000", "--repeat", "3"]
    target = RESULTS / "overhead" / "overhead.json"
    argv = [sys.executable, "-m", "poollab.measure.overhead", *sizes, "--summary", str(target)]
    _log("overhead: " + " ".join(argv[1:]))
    subprocess.run(argv, cwd=root, timeout=PEERS_TIMEOUT_S, check=True)


def run_publisher(root: Path, quick: bool) -> None:
    """The publisher against send_task, without and with issued-ids records, in one summary."""
    jobs, celery_jobs, rounds = ("20000", "1000", "1") if quick else ("100000", "5000", "5")
    sizes = ["--jobs", jobs, "--celery-jobs", celery_jobs, "--rounds", rounds]
    rows: list[Row] = []
    commands = []
    with BackgroundLoad() as load:
        for remember in (False, True):
            argv = ["-m", "poollab.measure.publisher", *sizes, *(["--remember"] * remember)]
            commands.append(shlex.join(["python", *argv]))
            _log("publisher: " + commands[-1])
            out = subprocess.run(
                [sys.executable, *argv], cwd=root, capture_output=True, text=True,
                timeout=PEERS_TIMEOUT_S, check=True,
            )  # fmt: skip
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "issued-ids records": remember,
                    "publisher jobs/s": figures["publisher_jobs_per_s"],
                    "send_task jobs/s": figures["send_task_jobs_per_s"],
                    "ratio": figures["ratio"],
                    "publisher rounds": ", ".join(map(str, figures["publisher_rounds"])),
                    "send_task rounds": ", ".join(map(str, figures["send_task_rounds"])),
                }
            )
    record = summary.new("publisher", " ; ".join(commands), load.other_cores)
    record.tables.append(summary.Table("noop jobs/s, best round", list(rows[0]), rows))
    summary.write(record, root / RESULTS / "publisher" / "publisher.json")


def run_faults(root: Path, quick: bool) -> None:
    del quick  # the fault tests have one size
    _log("faults: " + " ".join(faults.pytest_argv()))
    with BackgroundLoad() as load:
        record = faults.run(root)
    record.busy_cores = round(load.other_cores, 2)
    summary.write(record, root / RESULTS / "faults" / "faults.json")


RUNNERS: dict[str, Callable[[Path, bool], None]] = {
    "talk": run_talk,
    "peers": run_peers,
    "faults": run_faults,
    "overhead": run_overhead,
    "publisher": run_publisher,
}


def run(root: Path, names: list[str], quick: bool) -> list[str]:
    """Run each measurement in turn; the names of those that failed (the others still ran)."""
    chosen = list(RUNNERS) if "all" in names else names
    failed = []
    for name in chosen:
        started = time.monotonic()
        try:
            RUNNERS[name](root, quick)
        except (RuntimeError, subprocess.SubprocessError) as error:
            _log(f"{name}: FAILED after {time.monotonic() - started:.0f} s: {error}")
            failed.append(name)
            continue
        _log(f"{name}: done in {time.monotonic() - started:.0f} s")
    return failed
