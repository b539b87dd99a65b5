"""Screenshots of Locust and Flower for the docs, taken with headless Chromium.

Against a running lab (``poollab up``, with ``FLOWER_BASIC_AUTH`` set for Flower)::

    .venv/bin/python loadtest/screenshots.py --out docs/img

It starts a Locust of its own with the web UI (``--autostart``, a bounded run), waits until
the statistics have filled, photographs Locust's statistics and charts and Flower's
workers and tasks pages while the load runs, then stops that Locust. Loopback only.
Not imported by Locust (and it imports no locust itself).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
    # the pages draw from data they fetch: give their scripts time to run, and a page that
    # keeps polling (Locust's charts) is cut off rather than waited for
    "--virtual-time-budget=5000", "--timeout=20000",
)  # fmt: skip


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise SystemExit("no chromium: apt-get install -y chromium (or .ci/install-tools)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if only to say "log in"
    except (urllib.error.URLError, OSError):
        return False


def screenshot(url: str, path: Path, size: str, tries: int = 3) -> None:
    """One PNG of the page; a Chromium that hangs is killed with its children and retried."""
    for attempt in range(1, tries + 1):
        with tempfile.TemporaryDirectory(
            prefix="poollab-chromium-", ignore_cleanup_errors=True
        ) as profile:
            browser = subprocess.Popen(
                [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--window-size={size}", f"--screenshot={path}", url],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                if browser.wait(60) == 0 and path.is_file():
                    print(f"wrote {path}")
                    return
            except subprocess.TimeoutExpired:
                pass
            finally:
                # the renderer and GPU processes too: they are the group's
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(browser.pid, signal.SIGKILL)
                browser.wait()
        print(f"chromium failed on {url} (try {attempt} of {tries})", file=sys.stderr)
    raise SystemExit(f"no screenshot of {url}")


def with_auth(url: str, auth: str) -> str:
    """Basic auth in the URL: Chromium sends it for the page it opens."""
    if not auth:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{auth}@{rest}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    port = os.environ.get("POOLLAB_PRODUCER_PORT", "8000")
    parser.add_argument("--producer", default=f"http://127.0.0.1:{port}")
    flower_port = os.environ.get("POOLLAB_FLOWER_PORT", "5555")
    parser.add_argument("--flower", default=f"http://127.0.0.1:{flower_port}")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--kinds", default="io", help="job kinds for the run (default: io)")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds before the shots")
    parser.add_argument("--size", default="1400,900", help="window size (width,height)")
    args = parser.parse_args(argv)
    if not answers(f"{args.producer}/healthz"):
        raise SystemExit(f"no producer at {args.producer}: start the lab (poollab up)")
    auth = os.environ.get("FLOWER_BASIC_AUTH", "").split(",")[0]
    args.out.mkdir(parents=True, exist_ok=True)

    web_port = free_port()
    locust_url = f"http://127.0.0.1:{web_port}"
    # the run outlasts the screenshots; it is stopped below, and bounded in any case
    run_time = int(args.warmup) + 90
    locust = subprocess.Popen(
        [str(Path(sys.executable).parent / "locust"), "-f", str(HERE / "locustfile.py"),
         "--autostart", "-u", str(args.users), "-r", str(args.users), "-t", f"{run_time}s",
         "--web-host", "127.0.0.1", "--web-port", str(web_port), "--host", args.producer,
         "--load-kinds", args.kinds, "--loglevel", "WARNING"],
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not answers(locust_url):
            if locust.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("locust's web UI did not come up")
            time.sleep(0.5)
        time.sleep(args.warmup)
        screenshot(f"{locust_url}/", args.out / "locust-statistics.png", args.size)
        screenshot(f"{locust_url}/?tab=charts", args.out / "locust-charts.png", args.size)
        if answers(f"{args.flower}/healthcheck"):
            flower = with_auth(args.flower, auth)
            screenshot(f"{flower}/workers", args.out / "flower-workers.png", args.size)
            screenshot(f"{flower}/tasks", args.out / "flower-tasks.png", args.size)
        else:
            print(f"no Flower at {args.flower}: its screenshots are left out", file=sys.stderr)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(locust.pid, signal.SIGTERM)
        try:
            locust.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(locust.pid, signal.SIGKILL)
            locust.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
