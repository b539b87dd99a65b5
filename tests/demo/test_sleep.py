from __future__ import annotations

from collections.abc import Callable

from poollab.demo.result import DemoResult, Verdict
from poollab.demo.sleep import LONGEST_TOLERANCE, _verdict

from .conftest import assert_held_unless_busy, assert_structure, num


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("sleep")
    assert_structure(result, "sleep")
    assert result.rows[0]["sleeper"] == "long"


def test_sleepers_overlap_and_short_ones_finish_first(
    quick_result: Callable[[str], DemoResult],
) -> None:
    result = quick_result("sleep")
    long_s = num(result.rows[0], "sleep_s")
    # a sleep never ends early: these hold however loaded the machine is
    assert num(result.rows[0], "finished_s") >= long_s
    assert num(result.summary, "threaded_s") >= long_s
    assert num(result.summary, "sequential_s") >= sum(num(row, "sleep_s") for row in result.rows)
    assert result.summary["short_sleepers_finished_first"] is True
    # "as long as the longest sleeper" (within 10%): a late wake-up on a busy machine may
    # spoil it, and then the verdict says inconclusive
    assert_held_unless_busy(result)


def test_rule_is_the_longest_sleeper_within_10_percent() -> None:
    assert LONGEST_TOLERANCE == 1.1
    assert _verdict(4.0, 2.2, True, 2.0)[0] is Verdict.HELD
    verdict, reason = _verdict(4.0, 2.3, True, 2.0)
    # 2.3 s is well under the 4 s in sequence, but not "as long as the longest sleeper"
    assert verdict is Verdict.NOT_HELD and "2.30 s" in reason
    verdict, reason = _verdict(4.0, 2.0, False, 2.0)
    assert verdict is Verdict.NOT_HELD and "short sleeper finished after" in reason
