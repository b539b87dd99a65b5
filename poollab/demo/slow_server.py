"""A loopback line-echo server that waits before answering: an upstream with known latency.

It runs on real OS threads in the calling process, so it keeps answering even while the
child under test blocks its only thread.
"""

from __future__ import annotations

import socketserver
import threading
import time

from poollab.demo.loopback import HOST


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    # the default backlog of 5 would drop simultaneous connects and add SYN-retry seconds
    request_queue_size = 256


class SlowEchoServer:
    def __init__(self, delay: float) -> None:
        delay_s = delay

        class Handler(socketserver.StreamRequestHandler):
            timeout = 30  # a client that never sends must not pin a thread forever

            def handle(self) -> None:
                line = self.rfile.readline()
                time.sleep(delay_s)
                self.wfile.write(line)

        self._server = _Server((HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def __enter__(self) -> SlowEchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
