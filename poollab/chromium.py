"""Headless Chromium, for the docs' screenshots and for the tests that look at a page.

Debian's ``chromium`` (``.ci/install-tools`` installs it) run once per page: no profile of
the user's (a throwaway ``--user-data-dir``), no network of its own (no updates, sync or
QUIC), and killed with its whole process group when it hangs, renderer and GPU processes
included. Pages that draw from what they fetch get a virtual-time budget: time for their
scripts to run, after which a page that keeps polling is cut off rather than waited for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome", "headless_shell")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip
DEFAULT_BUDGET_MS = 5000


class ChromiumError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for name in BINARIES:
        if found := shutil.which(name):
            return found
    return None


def run_headless(
    url: str, *flags: str, budget_ms: int = DEFAULT_BUDGET_MS, timeout_s: float = 60.0
) -> str:
    """Run Chromium on ``url`` with ``flags`` (``--dump-dom``, ``--screenshot=...``); its stdout.

    Raises :class:`ChromiumError` when there is no Chromium, or it fails or hangs.
    """
    browser = find_chromium()
    if browser is None:
        raise ChromiumError("no chromium: apt-get install -y chromium (or .ci/install-tools)")
    with tempfile.TemporaryDirectory(
        prefix="poollab-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", f"--timeout={int(timeout_s * 1000 / 3)}",
             *flags, url],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            out = b""
        finally:
            # the renderer and GPU processes too: they are the group's
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode != 0:
        raise ChromiumError(f"chromium on {url} ended with {process.returncode}")
    return out.decode("utf-8", "replace")


def dump_dom(url: str, budget_ms: int = DEFAULT_BUDGET_MS, timeout_s: float = 60.0) -> str:
    """The page's DOM, serialised after its scripts had ``budget_ms`` of virtual time."""
    return run_headless(url, "--dump-dom", budget_ms=budget_ms, timeout_s=timeout_s)


def screenshot(
    url: str, path: Path, size: str = "1400,900", tries: int = 3,
    budget_ms: int = DEFAULT_BUDGET_MS,
) -> None:  # fmt: skip
    """One PNG of the page at ``size`` (``width,height``); a failed or hung try is retried."""
    failure: ChromiumError | None = None
    for _attempt in range(tries):
        path.unlink(missing_ok=True)
        try:
            run_headless(url, f"--window-size={size}", f"--screenshot={path}",
                         budget_ms=budget_ms)  # fmt: skip
        except ChromiumError as exc:
            failure = exc
            continue
        if path.is_file():
            return
    raise ChromiumError(f"no screenshot of {url}: {failure or 'no file written'}")
