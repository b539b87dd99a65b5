from __future__ import annotations

import platform
import sysconfig

from poollab.demo.runtime import this_python


def test_this_python_names_version_and_build() -> None:
    described = this_python()
    assert platform.python_version() in described
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert described.endswith("free-threaded build" if free_threaded else ", GIL build")
