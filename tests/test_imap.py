"""IMAP intake against a real Dovecot (started by the fixture with a throw-away config)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
import time

import pytest
from sqlalchemy import func, select

from bot.imap_reader import ImapReader
from bot.pipeline import Pipeline
from bot.setup import prepare_store
from store.db import Store
from store.models import InboundMessage, Request

from .conftest import SHARED, make_settings, require, running_bot, shared_available, wait_for
from .dovecot import Dovecot
from .test_email_loop import complete_request, in_days, make_mail


def _dovecot_binary() -> str:
    binary = os.environ.get("BIQ_TEST_DOVECOT") or shutil.which("dovecot") or "/usr/sbin/dovecot"
    require(os.path.exists(binary), "dovecot is not installed")
    return binary


@pytest.fixture
def dovecot():
    d = Dovecot(_dovecot_binary()).start()
    yield d
    d.cleanup()


def imap_settings(db_url, dovecot, outbound="dir:/tmp/biq-imap-unused", **kw):
    return make_settings(db_url, outbound, imap_url=dovecot.url, imap_password=dovecot.password, **kw)


def folder_count(dovecot, folder: str) -> int:
    c = dovecot.client()
    try:
        return c.folder_status(folder, ["MESSAGES"])[b"MESSAGES"]
    finally:
        c.logout()


def append(dovecot, *messages: bytes) -> None:
    c = dovecot.client()
    try:
        for m in messages:
            c.append("INBOX", m)
    finally:
        c.logout()


def count(store, model, *where) -> int:  # noqa: ANN001
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


async def test_waiting_messages_then_idle_wakeup(db_url, dovecot, sink):
    append(dovecot,
           make_mail(complete_request(in_days(10))).as_bytes(),
           make_mail("Interprète en arabe svp.").as_bytes(),
           make_mail(complete_request(in_days(11)), sender="someone@gmail.com").as_bytes(),
           make_mail("Absent", headers={"Auto-Submitted": "auto-replied"}).as_bytes())
    settings = imap_settings(db_url, dovecot, f"smtp://127.0.0.1:{sink.port}")
    async with running_bot(settings) as service:
        await wait_for(lambda: count(service.store, InboundMessage, InboundMessage.state != "new") == 4)
        await wait_for(lambda: len(sink.messages) == 3)
        assert folder_count(dovecot, "INBOX") == 0 and folder_count(dovecot, "BIQ/Traités") == 4
        t0 = time.monotonic()
        append(dovecot, make_mail(complete_request(in_days(12))).as_bytes())  # IDLE wakes the reader
        await wait_for(lambda: len(sink.messages) == 4, timeout=10)
        assert time.monotonic() - t0 < 8
        assert count(service.store, Request) == 3


async def test_server_restart_mid_run(db_url, dovecot, sink, caplog):
    caplog.set_level(logging.INFO, logger="biq.imap")
    settings = imap_settings(db_url, dovecot, f"smtp://127.0.0.1:{sink.port}")
    async with running_bot(settings):
        append(dovecot, make_mail(complete_request(in_days(10))).as_bytes())
        await wait_for(lambda: len(sink.messages) == 1)
        await asyncio.to_thread(dovecot.restart, 1.5)
        append(dovecot, make_mail(complete_request(in_days(11))).as_bytes())
        await wait_for(lambda: len(sink.messages) == 2, timeout=30)
        text = caplog.text
        assert "lost or refused" in text and "reconnected" in text


def test_message_announced_in_another_reply_is_not_left_waiting(db_url, dovecot):
    """A message that lands while SEARCH runs is announced in SEARCH's reply, which imapclient keeps
    to itself; IDLE would not announce it again, so it would wait for the next poll (30 s)."""
    settings = imap_settings(db_url, dovecot)
    store = Store(db_url)
    prepare_store(store, settings)
    reader = ImapReader(store, settings)
    assert reader.drain() == 0
    append(dovecot, make_mail(complete_request(in_days(10))).as_bytes())
    assert reader.client.search("ALL") == []  # the view had not caught up: announced, not returned
    reader.client.noop()  # and whatever else the server had to say about it is said
    stop = threading.Event()
    timer = threading.Timer(6.0, stop.set)
    timer.start()
    t0 = time.monotonic()
    try:
        reader._wait(stop)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 3
    assert reader.drain() == 1
    reader.close()
    store.dispose()


class CrashAfterStore(ImapReader):
    """Dies between storing a message and moving it, like a kill at the worst moment."""

    def _mark_processed(self, uids):  # noqa: ANN001
        raise SystemExit("killed")


def test_kill_between_store_and_move_gives_no_duplicate(db_url, dovecot, tmp_path):
    settings = imap_settings(db_url, dovecot, f"dir:{tmp_path / 'out'}")
    store = Store(db_url)
    prepare_store(store, settings)
    append(dovecot, make_mail(complete_request(in_days(10))).as_bytes())
    with pytest.raises(SystemExit):
        CrashAfterStore(store, settings).drain()
    assert count(store, InboundMessage) == 1 and folder_count(dovecot, "INBOX") == 1
    reader = ImapReader(store, settings)
    assert reader.drain() == 1  # seen again, recognised, only moved
    reader.close()
    assert count(store, InboundMessage) == 1 and folder_count(dovecot, "INBOX") == 0
    assert Pipeline(store, settings).process_pending() == 1
    assert count(store, Request) == 1
    assert len(list((tmp_path / "out").glob("*"))) == 0  # the sender is not running: queued once
    from store.models import Outbox
    assert count(store, Outbox) == 1
    store.dispose()


def test_too_big_messages_go_to_the_error_folder(db_url, dovecot):
    settings = imap_settings(db_url, dovecot, max_message_bytes=4000)
    store = Store(db_url)
    prepare_store(store, settings)
    big = make_mail("x" * 10_000)
    append(dovecot, big.as_bytes(), make_mail(complete_request(in_days(10))).as_bytes())
    reader = ImapReader(store, settings)
    assert reader.drain() == 1
    reader.close()
    assert folder_count(dovecot, "BIQ/Erreurs") == 1 and folder_count(dovecot, "BIQ/Traités") == 1
    assert count(store, InboundMessage, InboundMessage.state == "quarantined") == 1
    store.dispose()


def test_non_ascii_folder_names(db_url, dovecot):
    settings = imap_settings(db_url, dovecot, imap_processed_folder="BIQ/Traités — 2026", imap_error_folder="BIQ/Échecs")
    store = Store(db_url)
    prepare_store(store, settings)
    append(dovecot, make_mail(complete_request(in_days(10))).as_bytes())
    reader = ImapReader(store, settings)
    reader.drain()
    reader.close()
    c = dovecot.client()
    names = [f[2] for f in c.list_folders()]
    c.logout()
    assert "BIQ/Traités — 2026" in names and "BIQ/Échecs" in names
    assert folder_count(dovecot, "BIQ/Traités — 2026") == 1
    store.dispose()


def _bulk(dovecot, n: int) -> None:
    c = dovecot.client()
    try:
        msgs = [make_mail(f"Interprète arabe, message {i}").as_bytes() for i in range(n)]
        for i in range(0, n, 100):
            c.multiappend("INBOX", msgs[i:i + 100])
    finally:
        c.logout()


def test_a_thousand_messages_waiting_at_start_up(db_url, dovecot):
    settings = imap_settings(db_url, dovecot)
    store = Store(db_url)
    prepare_store(store, settings)
    _bulk(dovecot, 1000)
    reader = ImapReader(store, settings)
    t0 = time.perf_counter()
    assert reader.drain() == 1000
    elapsed = time.perf_counter() - t0
    reader.close()
    print(f"IMAP: 1000 messages taken in {elapsed:.1f} s ({1000 / elapsed:.0f} msg/s)")
    assert count(store, InboundMessage) == 1000 and folder_count(dovecot, "INBOX") == 0
    store.dispose()


def test_two_readers_on_one_mailbox_do_not_double_process(pg_database, dovecot):
    """Several instances share one store on PostgreSQL (row locks), not on SQLite."""
    db_url = pg_database
    settings = imap_settings(db_url, dovecot)
    store = Store(db_url)
    prepare_store(store, settings)
    _bulk(dovecot, 300)
    readers = [ImapReader(Store(db_url), settings) for _ in range(2)]
    errors: list[BaseException] = []

    def run(r: ImapReader) -> None:
        try:
            for _ in range(5):
                r.drain()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            r.close()

    threads = [threading.Thread(target=run, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert count(store, InboundMessage) == 300
    assert folder_count(dovecot, "INBOX") == 0
    assert folder_count(dovecot, "BIQ/Traités") == 300
    store.dispose()


@pytest.mark.skipif(not shared_available(), reason="../shared is not beside the project")
def test_real_mail_corpus_over_imap_none_lost(tmp_path, dovecot):
    """Every real-world message appended over IMAP is stored and ends done, ignored or quarantined."""
    db_url = f"sqlite:///{tmp_path / 'biq.db'}"
    settings = imap_settings(db_url, dovecot, f"dir:{tmp_path / 'out'}")
    store = Store(db_url)
    prepare_store(store, settings)
    root = SHARED / "corpora" / "real-mail"
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".md", ".tsv")
                   and "_body-only" not in p.parts)
    c = dovecot.client()
    appended, refused = set(), 0
    from imapclient.exceptions import IMAPClientError
    for p in files:
        raw = p.read_bytes()
        try:
            c.append("INBOX", raw)
            appended.add(raw)
        except IMAPClientError:
            refused += 1  # the server itself refuses a few malformed files (e.g. bare CR, NUL)
    c.logout()
    reader = ImapReader(store, settings)
    while reader.drain():
        pass
    reader.close()
    stored = count(store, InboundMessage)
    print(f"real-mail over IMAP: {len(files)} files, {refused} refused by Dovecot's APPEND, {stored} stored")
    assert folder_count(dovecot, "INBOX") == 0
    from bot.intake import content_hash
    c = dovecot.client()
    c.select_folder("BIQ/Traités", readonly=True)
    uids = c.search("ALL")
    moved = {content_hash(v[b"BODY[]"]) for i in range(0, len(uids), 200)
             for v in c.fetch(uids[i:i + 200], ["BODY.PEEK[]"]).values()}
    c.logout()
    with store.session() as s:
        hashes = set(s.scalars(select(InboundMessage.sha256)))
    assert len(uids) == len(appended) and moved <= hashes  # every message taken out of the inbox is stored
    pipeline = Pipeline(store, settings)
    while pipeline.process_pending(200):
        pass
    assert count(store, InboundMessage, InboundMessage.state == "new") == 0
    with store.session() as s:
        states = dict(s.execute(select(InboundMessage.state, func.count()).group_by(InboundMessage.state)).all())
    print("outcomes:", states)
    assert set(states) <= {"done", "ignored", "quarantined"}
    store.dispose()
