"""Benchmarks a person runs (see the README's "Figures"); each prints a table."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def scratch(prefix: str) -> Path:
    """A temporary folder for a run's database and replies, removed when the script ends (a
    million-request store is hundreds of megabytes). BIQ_BENCH_KEEP=1 keeps it to look at."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if not os.environ.get("BIQ_BENCH_KEEP"):
        atexit.register(shutil.rmtree, path, True)
    return path


def interpreter() -> str:
    """Which Python ran the figures, and how it was built: on this machine Debian's
    /usr/bin/python3 (PGO, LTO, the interpreter inside the executable) runs the bot ≈ 12 % faster
    than pyenv's default build (no PGO, calls through a shared libpython)."""
    import platform
    import sys
    exe = os.path.realpath(sys.executable)
    try:
        shared = "libpython" in Path("/proc/self/maps").read_text()
    except OSError:
        shared = None
    how = {True: "shared libpython", False: "interpreter linked into the executable", None: "linkage unknown"}
    return f"{platform.python_implementation()} {platform.python_version()} at {exe} ({how[shared]})"
