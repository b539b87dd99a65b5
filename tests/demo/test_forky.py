from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from poollab.demo import forky
from poollab.demo.interpreters import ROOT_MARKER


def test_mirror_is_the_one_apt_uses(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "debian.sources").write_text(
        "Types: deb\n# http://snapshot.example/debian\nURIs: http://mirror.test/debian/\n"
        "Suites: bookworm\n"
    )
    (sources / "other.list").write_text("deb https://packages.example/apt stable main\n")
    assert forky.mirror((tmp_path / "sources.list", sources)) == "http://mirror.test/debian"


def test_mirror_from_a_one_line_list_with_options(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text("deb [arch=amd64 signed-by=/k.gpg] http://one.test/debian bookworm main\n")
    assert forky.mirror((listing,)) == "http://one.test/debian"
    assert forky.mirror((tmp_path / "none",)) == forky.DEFAULT_MIRROR


def test_the_sid_script_builds_forky_where_debootstrap_has_no_forky_script(
    tmp_path: Path,
) -> None:
    (tmp_path / "sid").write_text("")
    assert forky.debootstrap_script(tmp_path) == tmp_path / "sid"
    (tmp_path / "forky").write_text("")
    assert forky.debootstrap_script(tmp_path) == tmp_path / "forky"
    with pytest.raises(forky.BuildError, match="neither a forky nor a sid script"):
        forky.debootstrap_script(tmp_path / "empty")


def test_debootstrap_command_installs_python_in_a_minimal_root() -> None:
    command = forky.debootstrap_command(Path("/r"), "http://m/debian", Path("/s/sid"))
    assert command == [
        "debootstrap",
        "--variant=minbase",
        "--include=python3.14,python3.14-venv",
        "forky",
        "/r",
        "http://m/debian",
        "/s/sid",
    ]


def test_mounts_under_a_root_are_found(tmp_path: Path) -> None:
    root = tmp_path / "root"
    info = tmp_path / "mountinfo"
    info.write_text(
        f"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        f"2 1 0:5 / {root}/proc rw - proc proc rw\n"
        f"3 1 0:6 / {root}-other/sys rw - sysfs sysfs rw\n"
    )
    assert forky.mounts_under(root, info) == [f"{root}/proc"]


def test_a_root_with_mounts_inside_is_never_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    monkeypatch.setattr(forky, "mounts_under", lambda path: [f"{path}/proc"])
    with pytest.raises(forky.BuildError, match="umount"):
        forky.remove_root(root)
    assert root.exists()
    monkeypatch.setattr(forky, "mounts_under", lambda path: [])
    forky.remove_root(root)
    assert not root.exists()


def test_a_whole_cached_root_is_not_built_again(tmp_path: Path) -> None:
    root = tmp_path / "forky-py314"
    root.mkdir()
    (root / ROOT_MARKER).write_text(json.dumps({"version": "3.14.8"}))
    built = forky.get(root)
    assert built.cached and built.version == "3.14.8" and built.seconds == 0.0
    assert built.interpreter.path == root / "usr/bin/python3.14"


def test_building_without_root_says_what_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(forky.BuildError, match="needs root"):
        forky.check_can_build()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(forky.BuildError, match="apt-get install debootstrap"):
        forky.check_can_build()


def test_a_failed_command_shows_its_last_lines() -> None:
    seen: list[str] = []
    script = "echo 'I: step one'; echo 'I: step two'; exit 3"
    with pytest.raises(forky.BuildError, match=r"exited 3:\nI: step one\nI: step two$"):
        forky._run(["sh", "-c", script], seen.append)
    assert seen == ["I: step one", "I: step two"]
