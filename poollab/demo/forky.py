"""Build the cached CPython 3.14: a minimal root of Debian's testing release ("forky", which
packages python3.14) made by debootstrap in the cache folder, never mixed into the host's
packages. It runs as ``chroot ROOT /usr/bin/python3.14``.

The root is built under a temporary name and renamed only once python3.14 answers inside
it, so a root that is there is always whole; a lock keeps two builds from racing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from poollab.demo.interpreters import ROOT_MARKER, Interpreter, forky_root

SUITE = "forky"
PACKAGES = ("python3.14", "python3.14-venv")
PYTHON = "usr/bin/python3.14"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SCRIPTS = Path("/usr/share/debootstrap/scripts")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# debootstrap's whole run (download, unpack, configure) took 25 s here; this is the bound
BUILD_TIMEOUT_S = 900.0


class BuildError(RuntimeError):
    """Why the root could not be built, and what would fix it."""


@dataclass(frozen=True)
class Built:
    interpreter: Interpreter
    seconds: float
    version: str
    cached: bool  # True: it was there already, nothing was built


def mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The Debian mirror this machine's apt uses (the same one the root is built from)."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(source.glob("*.sources")) + sorted(source.glob("*.list"))
        elif source.is_file():
            files.append(source)
    for file in files:
        for uri in _uris(file.read_text(errors="replace")):
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _uris(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        deb822 = re.match(r"URIs:\s*(.+)", line)
        if deb822:
            yield from deb822.group(1).split()
        one_line = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
        if one_line:
            yield one_line.group(1)


def debootstrap_script(scripts: Path = SCRIPTS) -> Path:
    # an older debootstrap (bookworm's) has no script for forky; sid's builds any testing suite
    for name in (SUITE, "sid"):
        if (scripts / name).exists():
            return scripts / name
    raise BuildError(f"debootstrap has neither a {SUITE} nor a sid script in {scripts}")


def debootstrap_command(target: Path, mirror_url: str, script: Path) -> list[str]:
    return [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(target),
        mirror_url,
        str(script),
    ]


def check_can_build() -> None:
    if os.geteuid() != 0:
        raise BuildError(
            "building the root needs root (debootstrap, and chroot to run it): run "
            "`sudo -H .venv/bin/poollab interpreters get 3.14`, and the demo as root too"
        )
    if shutil.which("debootstrap") is None:
        raise BuildError(
            "debootstrap is not installed: `apt-get install debootstrap` (or `bash "
            ".ci/install-tools`), then run this again"
        )


def get(
    root: Path | None = None,
    mirror_url: str | None = None,
    rebuild: bool = False,
    on_line: Callable[[str], None] = lambda line: None,
) -> Built:
    """The cached root with CPython 3.14, built first when it is not there (or ``rebuild``)."""
    root = root or forky_root()
    root.parent.mkdir(parents=True, exist_ok=True)
    with _locked(root.with_name(root.name + ".lock")):
        if not rebuild and (root / ROOT_MARKER).is_file():
            marker = json.loads((root / ROOT_MARKER).read_text())
            return Built(Interpreter(root / PYTHON, root), 0.0, marker["version"], cached=True)
        check_can_build()
        partial = root.with_name(root.name + ".partial")
        remove_root(partial)
        start = time.monotonic()
        url = mirror_url or mirror()
        _run(debootstrap_command(partial, url, debootstrap_script()), on_line)
        # apt's downloaded packages are not needed to run python: ~30 MB less in the cache
        for deb in (partial / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        version = Interpreter(partial / PYTHON, partial).describe()["version"]
        seconds = round(time.monotonic() - start, 1)
        record = {"version": version, "suite": SUITE, "mirror": url, "build_seconds": seconds}
        (partial / ROOT_MARKER).write_text(json.dumps(record, indent=2) + "\n")
        remove_root(root)
        partial.rename(root)
        return Built(Interpreter(root / PYTHON, root), seconds, version, cached=False)


def remove_root(root: Path) -> None:
    """Delete a root, refusing while anything is mounted inside it (an interrupted
    debootstrap leaves /proc and /sys mounted there, and those are not ours to delete)."""
    if not root.exists():
        return
    inside = mounts_under(root)
    if inside:
        raise BuildError(
            f"{root} still has mounts inside ({', '.join(inside)}): `umount` them, then run "
            "this again"
        )
    shutil.rmtree(root)


def mounts_under(root: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[str]:
    prefix = str(root.resolve())
    found = []
    for line in mountinfo.read_text().splitlines():
        # the fifth field is the mount point, with spaces escaped as \040
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def _run(command: list[str], on_line: Callable[[str], None]) -> None:
    tail: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as child:
        assert child.stdout is not None
        # a timer, not a check between lines: a stalled download prints nothing at all
        timer = threading.Timer(BUILD_TIMEOUT_S, child.kill)
        timer.start()
        try:
            for line in child.stdout:
                tail = [*tail[-19:], line.rstrip()]
                on_line(line.rstrip())
            code = child.wait()
        finally:
            timer.cancel()
    if code != 0:
        raise BuildError(f"`{' '.join(command)}` exited {code}:\n" + "\n".join(tail))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
