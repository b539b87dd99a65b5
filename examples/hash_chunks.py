"""A job that releases the GIL: SHA-256 over a few MB.

``hashlib`` lets go of the GIL while it hashes a buffer larger than 2 KiB, so threads run
these side by side on as many cores as there are: the threads pool scales with cores here
as well as prefork does, at a fraction of the memory. gevent and solo run one at a time
(a greenlet never yields inside C code), and so does the asyncio consumer's loop unless
the job goes to its executor (a plain function does: ``--cpu-executor``).

    POOLLAB_JOBS=hash_chunks PYTHONPATH=examples poollab up
    curl -s -XPOST localhost:8000/jobs \\
      -d '{"pool": "threads", "kind": "user", "task": "hash_chunks:digest", "params": {"mb": 8}}'
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

MAX_MB = 256


@lru_cache(maxsize=8)
def _data(mb: int) -> bytes:
    # built once per process and size: the job measures hashing, not allocating
    return bytes(range(256)) * (mb * 4096)


def digest(mb: int = 8, rounds: int = 1) -> dict[str, object]:
    """SHA-256 of ``mb`` MB, ``rounds`` times over (each round hashes the previous digest in)."""
    if not 1 <= mb <= MAX_MB or not 1 <= rounds <= 100:
        raise ValueError(f"mb must be 1..{MAX_MB} and rounds 1..100, got mb={mb}, rounds={rounds}")
    data = _data(mb)
    value = b""
    for _ in range(rounds):
        # update() rather than value + data: concatenating copies the MBs while holding the GIL
        hasher = hashlib.sha256(value)
        hasher.update(data)
        value = hasher.digest()
    return {"sha256": value.hex(), "bytes": len(data) * rounds}
