"""Screenshots of Locust and Flower for the docs, taken with headless Chromium.

Against a running lab (``poollab up``, with ``FLOWER_BASIC_AUTH`` set for Flower)::

    .venv/bin/python loadtest/screenshots.py --out docs/img

It starts a Locust of its own with the web UI (``--autostart``, a bounded run), waits until
the statistics have filled, photographs Locust's statistics and charts, Flower's workers
and tasks pages and the collector's live page while the load runs, then stops that
Locust. Loopback only. Not imported by Locust (and it imports no locust itself).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from poollab import chromium

HERE = Path(__file__).resolve().parent


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


def screenshot(url: str, path: Path, size: str) -> None:
    """One PNG of the page (see :func:`poollab.chromium.screenshot`), or exit saying why."""
    try:
        chromium.screenshot(url, path, size)
    except chromium.ChromiumError as exc:
        raise SystemExit(str(exc)) from None
    print(f"wrote {path}")


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
    collector_port = os.environ.get("POOLLAB_COLLECTOR_PORT", "8002")
    parser.add_argument("--collector", default=f"http://127.0.0.1:{collector_port}")
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
            # the asyncio consumer's own page: it answers Celery's control commands
            node = f"asyncio@{socket.gethostname()}"
            screenshot(f"{flower}/worker/{node}", args.out / "flower-asyncio-worker.png", args.size)
        else:
            print(f"no Flower at {args.flower}: its screenshots are left out", file=sys.stderr)
        if answers(f"{args.collector}/healthz"):
            screenshot(f"{args.collector}/", args.out / "live-page.png", args.size)
        else:
            print(f"no collector at {args.collector}: no live-page.png", file=sys.stderr)
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
