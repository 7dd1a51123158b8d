"""Engine, sessions and schema migrations (alembic), for SQLite and PostgreSQL alike."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
# SQLite copies the write-ahead log back into the database file (a checkpoint, with an fsync)
# inside whichever commit crosses this many pages. `serve` checkpoints in the background every
# second instead, so no message's commit pays for it; this high mark is only the safety net for
# other processes writing on their own (the default, 1,000 pages, put a 10-20 ms stall into a
# commit every few hundred messages).
WAL_AUTOCHECKPOINT_PAGES = 10_000


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, busy_timeout: float = 15.0, durable: bool = True) -> Engine:
    """On SQLite, *durable* commits reach the disk before they return (`synchronous=FULL`: a
    `250` or a delivered reply survives a power cut). Without it (`NORMAL`) a commit reaches the
    disk with the next durable commit or checkpoint: for a pipeline worker, whose commits
    nothing outside sees before `serve` commits again (durably), fsyncing the same log file."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):  # noqa: ANN001
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cur.execute("PRAGMA mmap_size=268435456")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                         connect_args={"connect_timeout": max(1, int(busy_timeout))})


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """The database handle the bot passes around: an engine and a session factory."""

    def __init__(self, url: str, busy_timeout: float = 15.0, durable: bool = True) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, busy_timeout, durable)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writers = threading.Lock()
        self._lock_file = None
        path = self.url.split(":///", 1)[-1] if self.url.startswith("sqlite") else ""
        if path and path != ":memory:":
            self._lock_file = open(path + ".writer", "a+b")  # noqa: SIM115 - held for the store's life

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Take turns with every other busy writer of this SQLite file, in any process.

        SQLite lets one writer in at a time and makes the others poll with growing sleeps
        (1, 2, 5, 10 ... 100 ms), so under a burst the intake, the pipeline workers and the
        sender lost more time sleeping than writing. A blocking file lock queues them in the
        kernel instead: the next one starts the moment the last one commits. PostgreSQL has
        row locks; nothing to do there."""
        if self._lock_file is None:
            yield
            return
        with self._writers:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """`session()` for the busy writers (intake, pipeline, sender): see `writer()`."""
        with self.writer(), self.session() as s:
            yield s

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """`write_session()` without the ORM, for writers that only run statements (intake,
        sender): a Session's set-up and commit bookkeeping cost more than their INSERTs."""
        with self.writer(), self.engine.begin() as conn:
            yield conn

    def checkpoint(self) -> tuple[int, int] | None:
        """SQLite: copy what the write-ahead log holds into the database file without waiting
        for (or blocking) any writer; returns (pages in the log, pages copied). None elsewhere."""
        if not self.url.startswith("sqlite"):
            return None
        with self.engine.connect() as conn:
            _busy, in_log, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return in_log, copied

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self.sessions() as s, s.begin():
            yield s

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
