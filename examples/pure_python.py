"""A job that holds the GIL: counting primes by trial division, in pure Python.

Every step is bytecode, so only one thread of a process runs it at a time: threads, gevent
and solo all give one core's worth, however many slots they have. Processes win: prefork
with as many children as cores, or the asyncio consumer's process executor (its default
``--cpu-executor process``). The job's time grows a little faster than ``limit``.

    POOLLAB_JOBS=pure_python PYTHONPATH=examples poollab up
    curl -s -XPOST localhost:8000/jobs \\
      -d '{"pool": "prefork", "kind": "user", "task": "pure_python:count_primes",
           "params": {"limit": 50000}}'
"""

from __future__ import annotations

MAX_LIMIT = 10_000_000


def count_primes(limit: int = 50_000) -> dict[str, int]:
    """How many primes are below ``limit`` (and the largest of them)."""
    if not 2 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 2..{MAX_LIMIT}, got {limit}")
    count, largest = 0, 0
    for n in range(2, limit):
        if _is_prime(n):
            count, largest = count + 1, n
    return {"count": count, "largest": largest}


def _is_prime(n: int) -> bool:
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True
