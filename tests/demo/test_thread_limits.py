from __future__ import annotations

import sys

import pytest

from poollab.demo.thread_limits import thread_cap


def test_small_counts_are_not_capped() -> None:
    assert thread_cap(10) == (10, None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_absurd_counts_are_capped_with_a_reason() -> None:
    count, reason = thread_cap(10**9)
    assert 1 <= count < 10**9
    assert reason
