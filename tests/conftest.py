"""Shared fixtures: a store on SQLite and on PostgreSQL, a running bot, a real SMTP sink."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import socket
import uuid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from bot.config import Settings
from bot.service import Service
from parsers.directory import Directory
from store.db import Store
from store.sample import SAMPLE_DIRECTORY

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_asyncio_loop_factories(config, item):  # noqa: ANN001, ANN201 - a pytest-asyncio hook
    """Async tests run on asyncio's own loop, except those in test_on_uvloop.py: on uvloop, the
    loop `biq-bot serve` runs on (bot.service.run)."""
    if getattr(item, "path", None) is not None and item.path.name == "test_on_uvloop.py":
        import uvloop
        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


def shared_available() -> bool:
    return (SHARED / "corpus" / "dev" / "labels.jsonl").exists()


@pytest.fixture(scope="session")
def directory() -> Directory:
    return Directory.from_folder(SAMPLE_DIRECTORY).build()


def require(available: bool, what: str) -> None:
    """A server the tests need: in CI its absence is a failure, on a laptop a skip that says why."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what}: run the tests with scripts/test.sh")
    pytest.skip(f"{what} (scripts/test.sh provides it)")


def _postgres_url() -> str:
    url = os.environ.get("BIQ_TEST_POSTGRES_URL", "")
    require(bool(url), "PostgreSQL is not started (BIQ_TEST_POSTGRES_URL unset)")
    return url


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    base = _postgres_url()
    name = "biq_test_" + uuid.uuid4().hex[:10]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    yield url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'biq.db'}"
    return request.getfixturevalue("pg_database")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """A real SMTP server (aiosmtpd) that keeps what it receives: the relay the bot sends to."""

    def __init__(self, port: int = 0, **smtp_options) -> None:  # noqa: ANN003 - aiosmtpd.smtp.SMTP's (TLS, AUTH)
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._port = port or free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self._port, **smtp_options)

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def start(self) -> Sink:
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return self._port

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


def make_settings(db_url: str, outbound: str, **overrides) -> Settings:
    s = Settings(database_url=db_url, smtp_listen="127.0.0.1:0", outbound=outbound,
                 bot_address="biq@ssss.gouv.qc.ca", poll_interval=0.05, outbound_backoff_seconds=0.2,
                 outbound_backoff_max_seconds=0.5)
    for k, v in overrides.items():
        setattr(s, k, v)
    return s


@contextlib.asynccontextmanager
async def running_bot(settings: Settings):
    """The whole bot (SMTP server, pipeline, sender, and whatever *settings* turn on) running in the
    test's event loop, stopped and its store closed whatever the test does."""
    service = Service(settings, Store(settings.database_url, busy_timeout=1.0))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        service.store.dispose()


@pytest.fixture
async def bot(db_url, sink):
    async with running_bot(make_settings(db_url, f"smtp://127.0.0.1:{sink.port}")) as service:
        yield service


async def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll *predicate* (sync, may touch the store) until it is truthy; fail after *timeout*."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
