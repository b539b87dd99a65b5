"""Which broker a command uses: the one given, the running lab's, never an uninvited one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from poollab import settings as settings_module
from poollab.settings import NoBrokerError, get_settings, lab_client_settings

POOLLAB = str(Path(sys.executable).parent / "poollab")


@pytest.fixture
def no_broker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.delenv("POOLLAB_BROKER_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _write_state(directory: Path, pid: int, broker: str) -> None:
    (directory / ".poollab").mkdir(exist_ok=True)
    state = {"launcher_pid": pid, "broker_url": broker, "services": []}
    (directory / ".poollab" / "state.json").write_text(json.dumps(state))


def test_a_client_with_no_broker_and_no_lab_is_refused(no_broker_env: Path) -> None:
    with pytest.raises(NoBrokerError, match="POOLLAB_BROKER_URL"):
        lab_client_settings()


def test_a_client_beside_a_running_lab_uses_its_broker(no_broker_env: Path) -> None:
    _write_state(no_broker_env, os.getpid(), "redis://127.0.0.1:50001/0")
    assert lab_client_settings().broker_url == "redis://127.0.0.1:50001/0"


def test_the_state_of_a_lab_that_is_gone_is_ignored(no_broker_env: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_state(no_broker_env, dead.pid, "redis://127.0.0.1:50001/0")
    assert settings_module.running_lab_broker() is None
    with pytest.raises(NoBrokerError):
        lab_client_settings()


def test_a_given_broker_wins(no_broker_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_state(no_broker_env, os.getpid(), "redis://127.0.0.1:50001/0")
    monkeypatch.setenv("POOLLAB_BROKER_URL", "redis://127.0.0.1:50002/3")
    get_settings.cache_clear()
    assert lab_client_settings().broker_url == "redis://127.0.0.1:50002/3"


def test_submit_without_a_broker_says_so_and_sends_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "POOLLAB_BROKER_URL"}
    result = subprocess.run(
        [POOLLAB, "submit", "--pool", "solo", "--kind", "noop"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "no broker" in result.stderr and "poollab up" in result.stderr
