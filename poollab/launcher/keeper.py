"""The lab's keeper: when the launcher dies without stopping its lab, the keeper stops it.

A small process of its own session, started by :class:`poollab.launcher.lab.Lab` with its
stdin a pipe from the launcher. The launcher tells it, one line each, what to stop:

* ``group <pgid> <grace_s> <term>`` — a service's process group (its main process's pid);
  ``term`` is 1 when the keeper must send it SIGTERM itself (0: the service's main process
  gets it from the kernel, ``PR_SET_PDEATHSIG``);
* ``pid <pid> <grace_s>`` — one more process (the embedded Redis), stopped after the groups;
* ``forget <id>`` — stopped by the launcher, nothing to do;
* ``done`` — the launcher stopped its lab: exit without touching anything.

End of file without ``done`` means the launcher died (SIGKILL, a crash): every group gets
its grace period to go, then SIGKILL, whole (prefork's pool, the consumer's process pool),
then the extra processes. Only the standard library, so that it starts in a blink.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

POLL_S = 0.05


def _alive(pid: int, group: bool) -> bool:
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _send(pid: int, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if group else os.kill)(pid, sig)


def _stop_all(targets: dict[int, tuple[float, bool]], group: bool) -> None:
    """SIGTERM where asked, then SIGKILL whatever is still there at its own deadline."""
    began = now = time.monotonic()
    deadlines = {}
    for pid, (grace_s, term) in targets.items():
        if term:
            _send(pid, signal.SIGTERM, group=False)
        deadlines[pid] = now + grace_s
    while deadlines:
        now = time.monotonic()
        for pid, deadline in list(deadlines.items()):
            if not _alive(pid, group):
                print(f"keeper: {pid} gone after {now - began:.1f} s", flush=True)
                del deadlines[pid]
            elif now >= deadline:
                print(f"keeper: {pid} still there after its grace period; SIGKILL", flush=True)
                _send(pid, signal.SIGKILL, group)
                del deadlines[pid]
        time.sleep(POLL_S)


def main() -> int:
    # the launcher's Ctrl-C is not ours: only the end of the pipe (or SIGKILL) ends the keeper
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: dict[int, tuple[float, bool]] = {}
    pids: dict[int, tuple[float, bool]] = {}
    for line in sys.stdin:
        word, *rest = line.split()
        if word == "done":
            return 0
        if word == "group":
            groups[int(rest[0])] = (float(rest[1]), rest[2] == "1")
        elif word == "pid":
            pids[int(rest[0])] = (float(rest[1]), True)
        elif word == "forget":
            groups.pop(int(rest[0]), None)
            pids.pop(int(rest[0]), None)
    print(
        f"keeper: the launcher is gone; stopping {sorted(groups)} then {sorted(pids)}", flush=True
    )
    _stop_all(groups, group=True)
    _stop_all(pids, group=False)
    print("keeper: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
