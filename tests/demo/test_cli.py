from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from poollab.cli import CliError, main
from poollab.demo import registry
from poollab.demo.cli import DEFAULT_OUT, command_line, resolve

# the installed console script, as a user types it; `-m` where it is not installed beside python
_SCRIPT = Path(sys.executable).with_name("poollab")
POOLLAB = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "poollab.cli"]


def test_resolve_all_keeps_registry_order() -> None:
    assert resolve(["all"]) == list(registry.NAMES)
    assert resolve(["sleep", "gil", "sleep"]) == ["sleep", "gil"]


@pytest.mark.parametrize("names", [[], ["nope"], ["gil", "nope"]])
def test_resolve_rejects_missing_or_unknown_names(names: list[str]) -> None:
    with pytest.raises(CliError, match="executors"):
        resolve(names)


def test_unknown_experiment_exits_2_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'nope'" in err and "all" in err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in registry.NAMES)


def test_command_line_reproduces_the_run() -> None:
    args = argparse.Namespace(names=["gil"], quick=True, out=Path("x y"), json=True, no_chart=False)
    assert command_line(args) == "poollab demo gil --quick --out 'x y' --json"


def test_gil_quick_json_through_the_real_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [*POOLLAB, "demo", "gil", "--quick", "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["machine"]["cpu_count"] >= 1
    (result,) = document["results"]
    assert result["name"] == "gil"
    # a failed claim is "did not hold" on a quiet machine and "inconclusive" on a busy one
    background = result["background_cores"]
    assert isinstance(background, float)
    if result["verdict"] == "did not hold":
        assert background <= 0.5
    else:
        assert result["verdict"] == "held" or (
            result["verdict"] == "inconclusive" and background >= 0.5
        ), (result["verdict"], background)
    assert {row["kind"] for row in result["rows"]} == {"threads", "processes"}
    assert Path(result["chart"]).exists()
    assert "--quick" in document["command"]


def test_nope_through_the_real_command() -> None:
    done = subprocess.run(
        [*POOLLAB, "demo", "nope"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "unknown experiment 'nope'" in done.stderr
    assert not done.stdout


def test_a_python_that_is_no_interpreter_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "subinterpreters", "--python", "/no/such/python3.14"]) == 2
    assert "--python /no/such/python3.14: no such file" in capsys.readouterr().err


def test_command_line_keeps_a_given_python() -> None:
    args = argparse.Namespace(
        names=["all"], quick=True, out=DEFAULT_OUT, json=False, no_chart=False, python="/p/py"
    )
    assert command_line(args) == "poollab demo all --quick --python /p/py"
