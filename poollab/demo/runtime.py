"""What this interpreter is, in the words the experiments show: version and build.

Whether another interpreter can run the sub-interpreter and free-threading experiments is
`interpreters.py`'s question; its child answers for the interpreter it runs in.
"""

from __future__ import annotations

import platform
import sysconfig


def this_python() -> str:
    build = "free-threaded build" if sysconfig.get_config_var("Py_GIL_DISABLED") else "GIL build"
    return f"{platform.python_implementation()} {platform.python_version()}, {build}"
