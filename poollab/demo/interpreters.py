"""Other Python interpreters for the experiments this one cannot run: where they are cached,
how to run one (directly, or inside the root it was built in), and which one to pick.

An interpreter built by `poollab interpreters get 3.14` lives in a Debian root of its own
(`forky.py`), never mixed into the host's packages, so it runs as
``chroot ROOT /usr/bin/python3.14``; any other is an executable run as it is.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poollab.demo.runtime import this_python
from poollab.demo.subproc import ChildError, child_script, run_command

CHILD = "parallel_child.py"
# the file that marks a root as built completely by `poollab interpreters get`
ROOT_MARKER = ".poollab-root.json"
AUTO = "auto"
GET_314 = "poollab interpreters get 3.14"
FREE_THREADED_HOWTO = (
    "get a free-threaded build (no Debian release packages one) from the python.org "
    "installers (tick 'free-threaded') or with `uv python install 3.14t`, then give it with "
    "`--python PATH` (for example --python ~/.local/bin/python3.14t)"
)
# free-threaded interpreters looked for on PATH when none is given
FREE_THREADED_NAMES = ("python3.14t", "python3.13t")


def cache_dir() -> Path:
    """$POOLLAB_CACHE_DIR, else $XDG_CACHE_HOME/poollab, else ~/.cache/poollab."""
    explicit = os.environ.get("POOLLAB_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "poollab"


def forky_root() -> Path:
    return cache_dir() / "forky-py314"


@dataclass(frozen=True)
class Interpreter:
    """A Python to run the child in: ``path`` as the host sees it, and the root it runs in."""

    path: Path
    root: Path | None = None

    @property
    def inner(self) -> str:
        """The interpreter's path as it sees itself (inside its root)."""
        if self.root is None:
            return str(self.path)
        return "/" + str(self.path.relative_to(self.root))

    def launcher(self) -> list[str]:
        if self.root is None:
            return []
        if os.geteuid() == 0:
            return ["chroot", str(self.root)]
        # without root, a user namespace can still change the root where the kernel allows it
        return ["unshare", "--map-root-user", "--root", str(self.root)]

    def label(self) -> str:
        return " ".join([*self.launcher(), self.inner])

    def run(self, args: list[str], timeout: float) -> dict[str, Any]:
        """Run the child script with ``args`` in this interpreter; its JSON answer."""
        script = child_script(CHILD)
        if self.root is not None:
            # the child is one self-contained file: a copy inside the root is all it needs
            inside = self.root / "tmp" / f"poollab-{CHILD}"
            staging = inside.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(script, staging)
            staging.replace(inside)
            script = Path("/tmp") / inside.name
        command = [*self.launcher(), self.inner, "-I", str(script), *args]
        try:
            return run_command(command, f"{self.label()} {CHILD} {args[0]}", timeout)
        except ChildError as exc:
            if self.root is not None and os.geteuid() != 0:
                raise ChildError(
                    f"{exc}; running {self.inner} in its root {self.root} needs root (chroot) "
                    "or unprivileged user namespaces (unshare --map-root-user): run as root"
                ) from exc
            raise

    def describe(self) -> dict[str, Any]:
        return self.run(["describe"], timeout=30)


def from_path(given: str) -> Interpreter:
    """The interpreter at ``given``; one inside a root built here runs chrooted in it."""
    path = Path(given).expanduser()
    if not path.exists():
        found = shutil.which(given)
        if found is None:
            raise ValueError(f"--python {given}: no such file, nor a command on PATH")
        path = Path(found)
    path = path.absolute()
    if path.is_dir():
        raise ValueError(f"--python {given}: a directory, not a Python interpreter")
    for parent in path.parents:
        if (parent / ROOT_MARKER).is_file():
            return Interpreter(path, parent)
    if not os.access(path, os.X_OK):
        raise ValueError(f"--python {given}: not executable")
    return Interpreter(path)


def cached_314() -> Interpreter | None:
    root = forky_root()
    python = root / "usr/bin/python3.14"
    if (root / ROOT_MARKER).is_file() and python.exists():
        return Interpreter(python, root)
    return None


def this_interpreter() -> Interpreter:
    return Interpreter(Path(sys.executable))


def for_subinterpreters(given: str) -> tuple[Interpreter | None, str]:
    """The interpreter to run sub-interpreters in, and how it was chosen, or None and what is
    missing with the one command that fixes it."""
    if given != AUTO:
        return from_path(given), "given with --python"
    if sys.version_info >= (3, 14):
        return this_interpreter(), "this interpreter"
    cached = cached_314()
    if cached is not None:
        return cached, f"cached by `{GET_314}`"
    return None, (
        f"needs CPython 3.14 (concurrent.futures.InterpreterPoolExecutor); this is "
        f"{this_python()}, and no CPython 3.14 is cached in {forky_root()}: get one with "
        f"`{GET_314}` (root and debootstrap, 30-100 s once) or give one with --python PATH"
    )


def for_free_threading(given: str) -> tuple[Interpreter | None, str]:
    """The free-threaded interpreter to run threads in, found as for_subinterpreters."""
    if given != AUTO:
        return from_path(given), "given with --python"
    if _gil_disabled_build():
        return this_interpreter(), "this interpreter"
    for name in FREE_THREADED_NAMES:
        found = shutil.which(name)
        if found is not None:
            return Interpreter(Path(found)), f"{name} on PATH"
    return None, (
        f"needs a free-threaded build (3.13t / 3.14t); this is {this_python()}, and neither "
        f"{' nor '.join(FREE_THREADED_NAMES)} is on PATH: {FREE_THREADED_HOWTO}"
    )


def build_of(described: dict[str, Any]) -> str:
    """'CPython 3.14.8, GIL build' or '..., free-threaded build, GIL off'."""
    text = f"{described['implementation']} {described['version']}, "
    if not described["gil_disabled_build"]:
        return text + "GIL build"
    return text + "free-threaded build, GIL " + ("on" if described["gil_enabled"] else "off")


def _gil_disabled_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
