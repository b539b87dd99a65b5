"""What one process tree (a consumer's main process and every descendant) uses right now.

RSS counts shared pages once per process (prefork's children share the parent's code
copy-on-write, so a summed RSS overstates what the tree really costs); USS counts only the
pages a process alone maps, so summed USS is what stopping the tree would give back; PSS
splits each shared page between the processes sharing it, so summed PSS is the tree's real
footprint (what a container's memory accounting sees, up to pages shared with outsiders).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class TreeUsage:
    procs: int
    rss: int
    uss: int
    pss: int
    # CPU seconds (user + system) the tree has used since its root started, reaped
    # descendants included, so that a difference of two readings is the CPU used between
    cpu_s: float


# Finding children reads /proc/*/stat of every process on the machine (tens of ms with a
# hundred processes, and longer when a CPU-bound thread of the sampled process holds the GIL
# between the reads), so the members are listed again only this often, or when one is gone.
RESCAN_S = 2.0


class ProcessTree:
    """Reads the usage of the tree below one root process."""

    def __init__(self, root_pid: int, rescan_s: float = RESCAN_S) -> None:
        self.root = psutil.Process(root_pid)
        self.rescan_s = rescan_s
        self._members: list[psutil.Process] = []
        self._listed_at = -float("inf")

    def members(self) -> list[psutil.Process]:
        # listed again now and then: prefork replaces children, the asyncio consumer's CPU
        # pool starts its processes late
        if time.monotonic() - self._listed_at >= self.rescan_s:
            self._members = [self.root, *self.root.children(recursive=True)]
            self._listed_at = time.monotonic()
        return self._members

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) of the tree so far, reaped descendants included.

        Cheaper than :meth:`usage` (no memory maps read): for meters that need only CPU.
        """
        total = 0.0
        for proc in self.members():
            try:
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                self._listed_at = -float("inf")
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def usage(self) -> TreeUsage:
        """One reading; a child that exits while it is read is left out of this one."""
        procs = rss = uss = pss = 0
        cpu_s = 0.0
        for proc in self.members():
            # a child can exit between listing and reading (prefork replaces children)
            gone = True
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                with proc.oneshot():
                    # full info reads /proc/PID/smaps_rollup: one file per process
                    memory = proc.memory_full_info()
                    times = proc.cpu_times()
                rss += memory.rss
                uss += memory.uss
                pss += memory.pss
                # children a member has reaped (a replaced prefork child, a process pool's
                # worker) still count: the kernel adds them to their parent's children times
                cpu_s += times.user + times.system + times.children_user + times.children_system
                procs += 1
                gone = False
            if gone:
                self._listed_at = -float("inf")
        return TreeUsage(procs=procs, rss=rss, uss=uss, pss=pss, cpu_s=cpu_s)


def tree_cpu_seconds(*pids: int) -> float:
    """CPU seconds used so far by the trees below these processes (0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            total += ProcessTree(pid, rescan_s=0.0).cpu_seconds()
    return total
