"""The fast path: pipeline worker processes, group commits at intake, flow control, batched
delivery, and the directly written MIME replies. Real processes, real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import func, select

from bot.background import BACKGROUND_NICE
from bot.intake import GroupWriter, Received, store_many
from bot.outbox import Sender
from bot.replies import OutgoingEmail, build_email
from bot.setup import prepare_store
from bot.smtp_server import InFlow
from store.db import Store, utcnow
from store.models import InboundMessage, Outbox, Request

from .conftest import ROOT, make_settings, running_bot, wait_for
from .test_email_loop import BOT, SOPHIE, complete_request, count, in_days, make_mail, send


def _request(i: int, days: int) -> bytes:
    """A complete request, distinct per *i* (its own Message-ID and subject)."""
    return make_mail(complete_request(in_days(days)), subject=f"Demande d'interprète {i}").as_bytes()


def _requests_per_inbound(store: Store) -> list[int]:
    with store.session() as s:
        return list(s.scalars(select(func.count(Request.id)).group_by(Request.inbound_id)))


def _replies_per_inbound(store: Store) -> list[int]:
    with store.session() as s:
        return list(s.scalars(select(func.count(Outbox.id)).group_by(Outbox.inbound_id)))


def test_two_worker_processes_share_the_queue_without_processing_twice(db_url, tmp_path):
    """Two `python -m bot.workers` on one store, both taking every message (no shard): each
    message gets exactly one request and one reply."""
    settings = make_settings(db_url, f"dir:{tmp_path / 'out'}", replies_per_sender_per_hour=10_000)
    store = Store(db_url)
    prepare_store(store, settings)
    n = 120
    store_many(store, [Received(_request(i, 3 + i % 50), SOPHIE, [BOT]) for i in range(n)])
    line = json.dumps(dataclasses.asdict(settings)).encode() + b"\nw"
    procs = [subprocess.Popen([sys.executable, "-m", "bot.workers", "0", "1"], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(2)]
    reported = [0, 0]
    reported_ids: list[int] = []

    def read_reports(k: int) -> None:
        for chunk in procs[k].stdout:
            report = json.loads(chunk)
            if isinstance(report, list):  # outcomes; {"taken": n} lines are for flow control
                reported[k] += len(report)
                reported_ids.extend(inbound_id for _, _, inbound_id in report)

    readers = [threading.Thread(target=read_reports, args=(k,), daemon=True) for k in range(2)]
    try:
        for p, r in zip(procs, readers, strict=True):
            p.stdin.write(line)
            p.stdin.flush()
            r.start()
        deadline = time.monotonic() + 60
        while sum(reported) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=30)
    assert sum(reported) == n  # together they account for every message, once
    with store.session() as s:
        assert sorted(reported_ids) == sorted(s.scalars(select(InboundMessage.id)))  # by id, for flow control
    assert sorted(_requests_per_inbound(store)) == [1] * n
    assert sorted(_replies_per_inbound(store)) == [1] * n
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.state != "done")) == 0
    store.dispose()


async def test_a_killed_worker_is_restarted_and_nothing_is_lost(db_url, tmp_path):
    settings = make_settings(db_url, f"dir:{tmp_path / 'out'}", pipeline_workers=2,
                             replies_per_sender_per_hour=10_000)
    async with running_bot(settings) as bot:
        await wait_for(lambda: all(p is not None for p in bot.workers.procs))
        first = [p.pid for p in bot.workers.procs]
        for i in range(20):
            await send(bot.port, _request(i, 4 + i))
        os.kill(first[0], signal.SIGKILL)
        for i in range(20):
            await send(bot.port, _request(100 + i, 30 + i))
        await wait_for(lambda: count(bot.store, Outbox) == 40, timeout=30)
        await wait_for(lambda: bot.workers.procs[0] is not None and bot.workers.procs[0].pid != first[0])
    assert sorted(_requests_per_inbound(bot.store)) == [1] * 40


def test_group_writer_commits_together_and_answers_each(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    store.migrate()
    writer = GroupWriter(store)
    raws = [_request(i, 5) for i in range(30)]
    futures = [writer.submit(Received(r, SOPHIE, [BOT])) for r in raws]
    futures.append(writer.submit(Received(raws[0], SOPHIE, [BOT])))  # the same message again
    results = [f.result(timeout=10) for f in futures]
    writer.close()
    ids = [i for i, dup in results[:30]]
    assert len(set(ids)) == 30 and not any(dup for _, dup in results[:30])
    assert results[30] == (ids[0], True)
    store.dispose()
    unready = Store(f"sqlite:///{tmp_path / 'empty.db'}")  # no schema: every write fails
    broken = GroupWriter(unready)
    futures = [broken.submit(Received(r, SOPHIE, [BOT])) for r in raws[:3]]
    for future in futures:  # each session gets the error (and answers 451); none is left hanging
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
            future.result(timeout=30)
    broken.close()
    unready.dispose()


async def test_serve_checkpoints_the_sqlite_log_in_the_background(tmp_path):
    """No commit pays for SQLite's checkpoint (it waited on an fsync): the automatic one only
    comes after 10,000 pages of log, and `serve` copies the log into the database every second."""
    db = tmp_path / "biq.db"
    settings = make_settings(f"sqlite:///{db}", f"dir:{tmp_path / 'out'}", pipeline_workers=0)
    async with running_bot(settings) as service:
        with service.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10_000
        before = db.stat().st_size
        bulky = [Received(_request(i, 5) + b"\n" + b"x" * 400_000, SOPHIE, [BOT]) for i in range(5)]
        await asyncio.to_thread(store_many, service.store, bulky)  # 2 MB: ~500 pages, all in the log
        await wait_for(lambda: db.stat().st_size > before + 2_000_000, timeout=10)
    assert Store("postgresql://nobody@/none").checkpoint() is None  # nothing to do (and no connection)


async def test_flow_control_holds_a_sender_until_its_own_message_is_processed():
    flow = InFlow(limit=2, max_delay=5.0)
    flow.stored(2)
    await asyncio.wait_for(flow.admit(1), 0.5)  # at the limit: straight in
    flow.stored()
    held = asyncio.create_task(flow.admit(3))
    await asyncio.sleep(0.2)
    assert not held.done()  # over the limit: the 250 waits
    flow.taken(3)  # taken, not processed yet: still waiting
    flow.processed([1, 2])  # the others' messages
    await asyncio.sleep(0.2)
    assert not held.done()
    flow.processed([3])
    await asyncio.wait_for(held, 1.0)
    assert (flow.waiting, flow.in_hand) == (0, 3)
    flow.taken(-3)
    assert (flow.waiting, flow.in_hand) == (0, 0)
    flow.stored(5)
    flow.processed([9])  # a worker can report a message before its session waits for it
    await asyncio.wait_for(flow.admit(9), 0.5)
    slow = InFlow(limit=1, max_delay=0.3)
    slow.stored(5)
    started = asyncio.get_running_loop().time()
    await slow.admit(7)  # never stuck: at most max_delay
    assert 0.25 <= asyncio.get_running_loop().time() - started < 2.0


async def test_serve_tells_flow_control_which_messages_its_workers_processed(tmp_path):
    """The ids go from the worker process to the SMTP side: without them every held sender
    would wait for the store's check instead of its report. (No sender is held here, whatever the
    worker's pace: a held sender's id resolves its wait instead of staying among the early ones,
    which made this test fail on a loaded machine.)"""
    settings = make_settings(f"sqlite:///{tmp_path / 'f.db'}", f"dir:{tmp_path / 'out'}", pipeline_workers=1,
                             smtp_flow_limit=100)
    async with running_bot(settings) as service:
        for i in range(3):
            await send(service.port, _request(i, 4 + i))
        with service.store.session() as s:
            ids = set(s.scalars(select(InboundMessage.id)))
        await wait_for(lambda: ids <= set(service.flow._early), timeout=20)
    assert len(ids) == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
async def test_the_sender_works_at_background_priority(tmp_path):
    """Delivering replies yields the CPU to receiving and processing mail under a burst."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    sender = Sender(Store(url), make_settings(url, f"dir:{tmp_path / 'out'}"))
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    tid, theirs = await sender._in_thread(lambda: (threading.get_native_id(),
                                                   os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    assert theirs == min(19, mine + BACKGROUND_NICE) > mine
    assert open(f"/proc/self/task/{tid}/comm").read().strip() == "biq-sender"  # as `top -H` shows it
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller's is unchanged


async def test_sender_writes_a_pass_of_files_and_records_them_at_once(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path / 's.db'}", f"dir:{tmp_path / 'out'}")
    store = Store(settings.database_url)
    store.migrate()
    now = utcnow()
    with store.session() as s:
        for i in range(12):
            s.add(Outbox(dedupe_key=f"k{i}", channel="email", kind="submitted", to_addr="a@example.org",
                         message=b"Subject: x\r\n\r\nhello\r\n", next_attempt_at=now, created_at=now))
    sender = Sender(store, settings)
    assert await sender.deliver_due(50) == 12
    assert len(list((tmp_path / "out").glob("*.eml"))) == 12
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Outbox).where(Outbox.state == "sent")) == 12
        assert s.scalar(select(func.max(Outbox.attempts))) == 1
    assert await sender.deliver_due(50) == 0  # nothing delivered twice
    store.dispose()


def test_replies_read_back_with_the_email_package():
    out = OutgoingEmail(to="sophie@example.org", subject="[BIQ-000042] Demande reçue — très bien\r\nBcc: x@y",
                        text="Bonjour,\nvotre demande est reçue.\n", html="<p>Bonjour</p>",
                        in_reply_to="<abc@example.org>", references=["<r1@example.org>", "not-an-id"],
                        ref="BIQ-000042", lang="fr", attachments=[("BIQ-000042.ics", "text/calendar", b"BEGIN:X\r\n")])
    raw, mid = build_email(out, from_addr="biq@example.org", from_name="Banque d'interprètes",
                           domain="example.org", now=utcnow())
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    m = message_from_bytes(raw, policy=default_policy)
    assert m["Subject"].startswith("[BIQ-000042] Demande reçue — très bien")
    assert m["Bcc"] is None and "x@y" not in m["To"]  # the CR LF in the subject could not add a header
    assert m["From"].addresses[0].display_name == "Banque d'interprètes"
    assert m["Message-ID"] == mid and mid.startswith("<biq-000042.")
    assert m["In-Reply-To"] == "<abc@example.org>"
    assert m["References"].split() == ["<r1@example.org>", "<abc@example.org>"]
    assert m["Auto-Submitted"] == "auto-replied" and m["Content-Language"] == "fr-CA"
    assert m.get_body(("plain",)).get_content() == "Bonjour,\nvotre demande est reçue.\n"
    assert m.get_body(("html",)).get_content() == "<p>Bonjour</p>"
    [ics] = list(m.iter_attachments())
    assert ics.get_filename() == "BIQ-000042.ics" and ics.get_content() == "BEGIN:X\r\n"
    assert not any(part.defects for part in m.walk())


def test_a_requester_added_while_running_is_known_without_a_restart(tmp_path, monkeypatch):
    import bot.pipeline
    from bot.pipeline import Pipeline
    from store.models import Requester

    settings = make_settings(f"sqlite:///{tmp_path / 'r.db'}", f"dir:{tmp_path / 'out'}")
    store = Store(settings.database_url)
    prepare_store(store, settings)
    pipeline = Pipeline(store, settings)
    newcomer = "nouvelle.personne@ssss.gouv.qc.ca"
    store_many(store, [Received(make_mail(complete_request(in_days(6)), sender=newcomer).as_bytes(), newcomer, [BOT])])
    pipeline.process_pending()
    assert count(store, Request) == 0  # unknown: an access reply, no request
    with store.session() as s:
        s.add(Requester(email=newcomer, name="Nouvelle Personne", role="requester", active=True))
    monkeypatch.setattr(bot.pipeline, "REQUESTER_TTL", 0.0)  # the cached map is "old" at once
    store_many(store, [Received(make_mail(complete_request(in_days(7)), sender=newcomer).as_bytes(), newcomer, [BOT])])
    pipeline.process_pending()
    assert count(store, Request) == 1
    store.dispose()


async def test_flow_control_asks_the_store_when_another_instance_did_the_work():
    """This instance's workers report nothing about messages another instance processed: the
    store, asked once per check for every sender held, lets each go when its message is done,
    and its backlog keeps the count from drifting."""
    done: set[int] = set()
    backlog = {"n": 30}
    asked: list[list[int]] = []

    async def recount() -> int:
        return backlog["n"]

    async def done_among(ids: list[int]) -> list[int]:
        asked.append(sorted(ids))
        return [i for i in ids if i in done]

    flow = InFlow(limit=4, max_delay=5.0, recount=recount, done_among=done_among)
    flow.stored(30)
    first = asyncio.create_task(flow.admit(101))
    second = asyncio.create_task(flow.admit(102))
    await asyncio.sleep(0.35)
    assert not first.done() and not second.done()  # really behind: held
    assert asked and all(ids == [101, 102] for ids in asked)  # one query for both senders
    assert len(asked) <= 0.35 / InFlow.RECHECK + 2  # one per check, not one per sender
    done.add(101)
    await asyncio.wait_for(first, 1.0)
    assert not second.done()
    flow.taken(4)  # this instance's worker holds four: the store counts them, they are not waiting
    backlog["n"] = 10
    await asyncio.sleep(InFlow.RECOUNT + 0.2)
    assert flow.waiting == 6
    done.add(102)
    await asyncio.wait_for(second, 1.0)

    async def broken(ids: list[int]) -> list[int]:
        raise OSError("store down")

    failing = InFlow(limit=1, max_delay=5.0, done_among=broken)
    failing.stored(3)
    await asyncio.wait_for(failing.admit(5), 1.0)  # a broken store does not hold senders


def test_requesters_of_one_installation_share_a_batch(tmp_path, caplog):
    """Cached requester rows are copied into each batch's session: attaching the rows
    themselves made two colleagues (one shared installation) collide in a batch, which then
    failed and fell back to one message at a time — silently slow, with a traceback a batch."""
    from bot.pipeline import Pipeline
    from store.models import Requester

    settings = make_settings(f"sqlite:///{tmp_path / 'c.db'}", f"dir:{tmp_path / 'out'}")
    store = Store(settings.database_url)
    prepare_store(store, settings)
    pipeline = Pipeline(store, settings)
    marc = "marc.gagnon.ccomtl@ssss.gouv.qc.ca"  # shares clsc-cote-des-neiges with SOPHIE

    def mail(i: int, sender: str, days: int) -> Received:
        raw = make_mail(complete_request(in_days(days)), sender=sender, subject=f"Demande {i}").as_bytes()
        return Received(raw, sender, [BOT])

    for i, who in enumerate((SOPHIE, marc)):  # each read once: both rows now cached
        store_many(store, [mail(i, who, 5 + i)])
        assert pipeline.process_pending(batch=4) == 1
    # cached rows carry their installations (as a row first met as a request's requester does),
    # each read in its own transaction: two copies of the shared installation
    for who in (SOPHIE, marc):
        with store.session() as s:
            row = s.scalars(select(Requester).where(Requester.email == who)).one()
            assert row.installations
        pipeline._requesters[row.id] = (time.monotonic(), row)
    store_many(store, [mail(2, SOPHIE, 5), mail(3, marc, 6), mail(4, SOPHIE, 8), mail(5, marc, 9)])
    with caplog.at_level("WARNING", logger="biq.pipeline"):
        assert pipeline.process_pending(batch=4) == 4
    assert "batch failed" not in caplog.text
    assert count(store, Request) == 6 and count(store, Outbox) == 6
    store.dispose()


async def test_on_postgresql_every_instance_hears_which_messages_were_processed(pg_database, tmp_path):
    """A worker's batch announces its ids with NOTIFY, sent only if it commits; every `serve` on
    the database listens, so a sender held by one instance goes on when another instance's
    worker is done with its message."""
    import psycopg

    from bot.pipeline import Pipeline
    from store.pg_notify import listen_processed, notify_processed

    settings = make_settings(pg_database, f"dir:{tmp_path / 'out'}")
    store = Store(pg_database)
    prepare_store(store, settings)
    conninfo = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    heard: list[int] = []
    listener = asyncio.create_task(listen_processed(conninfo, heard.extend))
    try:
        with psycopg.connect(conninfo, autocommit=True) as c:  # wait until it listens
            async def listening() -> bool:
                c.execute("SELECT pg_notify('biq_processed', '0')")
                await asyncio.sleep(0.05)
                return 0 in heard
            for _ in range(100):
                if await listening():
                    break
        ids = [i for i, _ in store_many(store, [Received(_request(i, 5 + i), SOPHIE, [BOT]) for i in range(3)])]
        with store.session() as s:  # a batch that does not commit announces nothing
            notify_processed(s.connection(), [999_999])
            s.rollback()
        await asyncio.to_thread(Pipeline(store, settings).process_pending)
        await wait_for(lambda: set(ids) <= set(heard), timeout=10)
        assert 999_999 not in heard
    finally:
        listener.cancel()
        store.dispose()
    async with running_bot(settings) as service:  # serve listens too
        with psycopg.connect(conninfo, autocommit=True) as c:
            for _ in range(100):
                c.execute("SELECT pg_notify('biq_processed', '424242,424243')")
                await asyncio.sleep(0.05)
                if 424243 in service.flow._early:
                    break
        assert {424242, 424243} <= set(service.flow._early)


def test_sqlite_commits_reach_the_disk_before_anything_outside_sees_them(tmp_path):
    """`250`, a reply's delivery and an IMAP move all follow a commit of `serve`, which waits
    for the disk (FULL); a worker's commits ride on the next such fsync of the same log (NORMAL)."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    serve, worker = Store(url), Store(url, durable=False)
    try:
        with serve.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        with worker.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        serve.dispose()
        worker.dispose()


def test_a_batch_asks_once_for_earlier_copies_and_reply_counts(db_url, tmp_path):
    """A batch looks up its messages' earlier copies and its senders' replies this hour with
    one query each (asked per message, they were a third of the statements on PostgreSQL),
    and the answers do not change: a re-sent copy in the batch is ignored, the hourly cap
    counts the replies queued earlier in the batch."""
    from sqlalchemy import event

    from bot.pipeline import Pipeline

    settings = make_settings(db_url, f"dir:{tmp_path / 'out'}", replies_per_sender_per_hour=3)
    store = Store(db_url)
    prepare_store(store, settings)
    pipeline = Pipeline(store, settings)
    first = make_mail(complete_request(in_days(5)), subject="Demande 0")
    store_many(store, [Received(first.as_bytes(), SOPHIE, [BOT])])
    assert pipeline.process_pending(batch=4) == 1  # one reply this hour already
    copy = make_mail(complete_request(in_days(5)), subject="Demande 0")
    copy.replace_header("Message-ID", first["Message-ID"])
    copy["X-Mailer"] = "sent again"  # other bytes, same Message-ID and sender
    store_many(store, [Received(copy.as_bytes(), SOPHIE, [BOT])]
               + [Received(_request(i, 6 + i), SOPHIE, [BOT]) for i in range(1, 4)])
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert pipeline.process_pending(batch=4) == 4
    assert sum("count(outbox.id)" in q for q in statements) == 1
    assert sum("min(inbound_messages.id)" in q for q in statements) == 1
    assert not any("inbound_messages.id <" in q for q in statements)  # no per-message look-up
    with store.session() as s:
        rows = s.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert [r.state for r in rows] == ["done", "ignored", "done", "done", "done"]
        assert "re-sent copy" in rows[1].outcome
    assert count(store, Request) == 4
    assert count(store, Outbox) == 3  # 1 before, 2 in the batch, then the cap of 3
    store.dispose()


def test_on_postgresql_a_batch_is_claimed_by_its_own_row_locks(pg_database, tmp_path):
    """On PostgreSQL the transaction that processes a batch locks its waiting rows first and
    those locks are the claim: rows another transaction holds are left to it, and a message's
    row is written once, with its outcome (no interim 'working' version, no second
    transaction). A trigger records every update of a message's state."""
    from sqlalchemy import text

    from bot.pipeline import Pipeline

    settings = make_settings(pg_database, f"dir:{tmp_path / 'out'}")
    store = Store(pg_database)
    prepare_store(store, settings)
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE state_log (inbound_id integer, state text)"))
        conn.execute(text("CREATE FUNCTION log_state() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                          "INSERT INTO state_log VALUES (NEW.id, NEW.state); RETURN NEW; END $$"))
        conn.execute(text("CREATE TRIGGER log_state AFTER UPDATE ON inbound_messages "
                          "FOR EACH ROW EXECUTE FUNCTION log_state()"))
    ids = [i for i, _ in store_many(store, [Received(_request(i, 5 + i), SOPHIE, [BOT]) for i in range(6)])]
    pipeline = Pipeline(store, settings)
    other = store.engine.connect()  # another worker, in the middle of its batch
    held = other.begin()
    assert other.execute(text("SELECT id FROM inbound_messages ORDER BY id LIMIT 2 FOR UPDATE")).scalars().all() == ids[:2]
    try:
        assert pipeline.process_pending(batch=4) == 4
        with store.session() as s:
            states = dict(s.execute(select(InboundMessage.id, InboundMessage.state)).all())
        assert [states[i] for i in ids] == ["new", "new", "done", "done", "done", "done"]
    finally:
        held.rollback()
        other.close()
    assert pipeline.process_pending(batch=4) == 2
    with store.engine.connect() as conn:
        log = conn.execute(text("SELECT inbound_id, state FROM state_log ORDER BY inbound_id")).all()
    assert log == [(i, "done") for i in ids]
    assert sorted(_requests_per_inbound(store)) == [1] * 6
    store.dispose()
