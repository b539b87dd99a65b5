"""How many threads this machine can spare: the cap the coroutines-vs-threads experiment obeys.

Every thread takes a PID (shared by the whole machine) and two memory mappings (stack and
guard page); running out of either breaks other programs, not just this one, so the demo stays
at half of what is free.
"""

from __future__ import annotations

import resource
from pathlib import Path


def thread_cap(wanted: int) -> tuple[int, str | None]:
    """At most ``wanted`` threads, fewer if a system limit says so (with the reason)."""
    limits: list[tuple[int, str]] = []
    pid_max = _read_int("/proc/sys/kernel/pid_max")
    threads_max = _read_int("/proc/sys/kernel/threads-max")
    running = _running_threads()
    if pid_max is not None and running is not None:
        limits.append(((pid_max - running) // 2, f"half the free PIDs (pid_max {pid_max:,})"))
    if threads_max is not None and running is not None:
        limits.append(
            ((threads_max - running) // 2, f"half the free threads (threads-max {threads_max:,})")
        )
    map_count = _read_int("/proc/sys/vm/max_map_count")
    if map_count is not None:
        limits.append((map_count // 4, f"a quarter of vm.max_map_count ({map_count:,})"))
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft != resource.RLIM_INFINITY and running is not None:
        limits.append((max(0, soft - running) // 2, f"half of RLIMIT_NPROC ({soft:,})"))
    cap, reason = min(limits, default=(wanted, ""), key=lambda item: item[0])
    if cap >= wanted:
        return wanted, None
    return max(1, cap), reason


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _running_threads() -> int | None:
    # the fourth field of /proc/loadavg is "runnable/total scheduling entities"
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):
        return None
