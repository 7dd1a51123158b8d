"""Benchmarks a person runs (see the README's "Figures"); each prints a table."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def scratch(prefix: str) -> Path:
    """A temporary folder for a run's database and replies, removed when the script ends (a
    million-request store is hundreds of megabytes). BIQ_BENCH_KEEP=1 keeps it to look at."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if not os.environ.get("BIQ_BENCH_KEEP"):
        atexit.register(shutil.rmtree, path, True)
    return path


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A PostgreSQL URL gives the server: each run gets a new, empty database on it, dropped
    afterwards, as each SQLite run gets a new file. Runs in a shared database would each find
    the replies of the runs before: the bench's senders (six of them, with no hourly cap) would
    have thousands of replies in the last hour to count, and the second of `--instances 1,2`
    would pay for what the first one wrote. Without the right to create a database the URL's
    own database is used, and the bench says so."""
    if not url.startswith(("postgres://", "postgresql")):
        yield url
        return
    import psycopg

    parts = urlsplit(url.replace("+psycopg", "", 1))
    name = "biq_bench_" + uuid.uuid4().hex[:10]
    try:
        with psycopg.connect(urlunsplit(parts), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(f"(cannot create a scratch database, {type(exc).__name__}: this run uses {parts.path[1:]!r} as it is)")
        yield url
        return
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with psycopg.connect(urlunsplit(parts), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
