"""Child of the gevent-patch experiment: blocking socket code in greenlets, patched or not.

Usage: gevent_child.py --port PORT --greenlets N --timeout SECONDS [--patch]
Each greenlet sends one line to the slow loopback server and waits for the echo. Run in a fresh
interpreter so that monkey-patching never touches the process that started it.
"""

import sys

# gevent's rule: patch before anything else imports socket, threading or time
if "--patch" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import json
import socket
import time

import gevent
from gevent import monkey as gevent_monkey


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--greenlets", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--patch", action="store_true")
    args = parser.parse_args()

    origin = time.perf_counter()
    finished: list[float] = []
    errors: list[str] = []

    def request() -> None:
        try:
            # plain blocking socket calls, as a library unaware of gevent would make them
            with socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) as sock:
                sock.sendall(b"ping\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    reply += chunk
            finished.append(time.perf_counter() - origin)
        except OSError as exc:
            errors.append(repr(exc))

    greenlets = [gevent.spawn(request) for _ in range(args.greenlets)]
    gevent.joinall(greenlets, timeout=args.timeout)
    wall = time.perf_counter() - origin
    print(
        json.dumps(
            {
                "patched": args.patch,
                "socket_patched": gevent_monkey.is_module_patched("socket"),
                "wall_s": wall,
                "ok": len(finished),
                "errors": errors[:5],
                "finished_s": sorted(finished),
            }
        )
    )


if __name__ == "__main__":
    main()
