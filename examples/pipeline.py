"""A mixed job: fetch from the upstream (blocking I/O), compress (C, releases the GIL), then
checksum in pure Python (holds the GIL) — the shape of many real jobs.

Which pool wins depends on the shares: with ``ms`` large the wait dominates and gevent or
many threads carry it; with ``kb`` large the compression runs in parallel on threads; with
``rounds`` large the pure-Python checksum makes it CPU-bound, and only processes scale. On
gevent, the GET yields (urllib's socket is patched); the rest does not.

    POOLLAB_JOBS=pipeline PYTHONPATH=examples poollab up
    curl -s -XPOST localhost:8000/jobs \\
      -d '{"pool": "threads", "kind": "user", "task": "pipeline:fetch_compress_sum",
           "params": {"ms": 20, "kb": 512, "rounds": 2}}'
"""

from __future__ import annotations

import random
import urllib.request
import zlib
from functools import lru_cache

from poollab.settings import get_settings

MAX_KB = 16_384


def fetch_compress_sum(ms: int = 20, kb: int = 256, rounds: int = 1) -> dict[str, int]:
    """GET ``kb`` KiB after ``ms`` ms, zlib-compress it, then a pure-Python checksum ×rounds."""
    if not 0 <= ms <= 60_000 or not 1 <= kb <= MAX_KB or not 0 <= rounds <= 100:
        raise ValueError(f"ms 0..60000, kb 1..{MAX_KB}, rounds 0..100; got {ms}, {kb}, {rounds}")
    url = f"{get_settings().upstream_url.rstrip('/')}/delay?ms={ms}&bytes={kb * 1024}"
    with urllib.request.urlopen(url, timeout=ms / 1000 + 30) as response:
        body = response.read()
    # the upstream answers zeros, which compress too well: XORed with text-like noise (big-int
    # operations, in C) zlib has real work to do
    size = len(body)
    data = (int.from_bytes(body, "little") ^ _noise(size)).to_bytes(size, "little")
    compressed = zlib.compress(data, 6)
    checksum = 0
    for _ in range(rounds):
        for byte in compressed:
            checksum = (checksum * 31 + byte) & 0xFFFFFFFF
    return {"fetched": len(body), "compressed": len(compressed), "checksum": checksum}


@lru_cache(maxsize=8)
def _noise(size: int) -> int:
    # made once per process and size: the job measures compressing, not generating
    text = bytes(random.Random(size).choices(b"abcdefgh \n", k=size))
    return int.from_bytes(text, "little")
