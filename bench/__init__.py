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
