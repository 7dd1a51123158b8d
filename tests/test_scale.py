"""Several instances on one PostgreSQL store, and the benchmark scripts at a small size."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from bot.ops import wait_until_drained
from store.db import Store

from .conftest import ROOT, free_port


def _serve(url: str, out, extra: dict | None = None) -> tuple[subprocess.Popen, int]:  # noqa: ANN001
    port = free_port()
    env = dict(os.environ, BIQ_DATABASE_URL=url, BIQ_SMTP_LISTEN=f"127.0.0.1:{port}", BIQ_OUTBOUND=f"dir:{out}",
               BIQ_BOT_ADDRESS="biq@ssss.gouv.qc.ca", BIQ_REPLIES_PER_SENDER_PER_HOUR="100000000",
               BIQ_POLL_INTERVAL="0.05", BIQ_OUTBOUND_LEASE_SECONDS="3", **(extra or {}))
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("serve did not start")


def test_two_instances_share_the_work_and_survive_a_kill(pg_database, tmp_path):
    """1,000 messages split between two instances on one PostgreSQL; one is killed mid-way."""
    import smtplib

    from bench.crash_test import SENDERS, message
    from bot.config import Settings
    from bot.setup import prepare_store
    store = Store(pg_database)
    prepare_store(store, Settings(database_url=pg_database))
    out = tmp_path / "out"
    a, port_a = _serve(pg_database, out)
    b, port_b = _serve(pg_database, out)
    accepted: set[str] = set()
    lock = threading.Lock()

    def client(port: int, ids: range) -> None:
        for i in ids:
            m = message(i)
            while True:
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                        c.sendmail(SENDERS[i % len(SENDERS)], ["biq@ssss.gouv.qc.ca"], m.as_bytes())
                    with lock:
                        accepted.add(m["Message-ID"])
                    break
                except (OSError, smtplib.SMTPException):
                    port = port_b  # the instance died: the sender's retry goes to the other one
                    time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(port_a, range(0, 500))),
               threading.Thread(target=client, args=(port_b, range(500, 1000)))]
    for t in threads:
        t.start()
    time.sleep(3)
    a.send_signal(signal.SIGKILL)  # one instance dies mid-way
    a.wait()
    for t in threads:
        t.join(300)
    try:
        assert wait_until_drained(store, timeout=240), "the surviving instance did not finish the work"
    finally:
        b.terminate()
        b.wait(timeout=30)
    assert len(accepted) == 1000
    from bench.crash_test import counts_per_message
    stored, per_message, replies = counts_per_message(store)
    assert all(stored.get(m) == 1 for m in accepted), "a message stored twice or not at all"
    assert all(per_message.get(m) == 1 for m in accepted), "a message without exactly one request"
    assert all(replies.get(m) == 1 for m in accepted), "a message without exactly one reply"
    assert len(list(out.glob("*.eml"))) == 1000
    store.dispose()


@pytest.mark.parametrize("script,args,expect", [
    ("parse_bench.py", ["--limit", "20", "--passes", "1"], "median ms"),
    ("smtp_bench.py", ["--messages", "40", "--clients", "1,8", "--threads"], "biq-worker-0"),
    ("search_bench.py", ["--requests", "3000", "--queries", "20", "--explain"], "USING INDEX ix_requests_requester_date"),
    ("memory_bench.py", ["--messages", "60", "--clients", "4"], "RSS after"),
    ("imap_bench.py", ["--messages", "50"], "IMAP reader"),
    ("drain_bench.py", ["--messages", "60", "--instances", "1"], "total s"),
    ("relay_bench.py", ["--replies", "60", "--connections", "1,4", "--delay-ms", "0,2"], "replies/s"),
    ("relay_bench.py", ["--replies", "30", "--connections", "2", "--delay-ms", "0", "--tls"], "STARTTLS required"),
    ("smtp_bench.py", ["--messages", "40", "--clients", "4", "--relay"], "bare msg/s"),
])
def test_bench_scripts_run_and_print_their_table(script, args, expect):
    scratch = Path(tempfile.mkdtemp(prefix="bq"))  # short: Dovecot's socket paths have a length limit
    scratch.chmod(0o755)  # and its unprivileged processes read their files below it
    env = dict(os.environ, TMPDIR=str(scratch))
    env.pop("BIQ_BENCH_KEEP", None)
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True,
                              text=True, timeout=600, cwd=ROOT, env=env)
        print(proc.stdout)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
        assert expect in proc.stdout
        assert not [p.name for p in scratch.glob("biq-*")], "a bench left its database or replies behind"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_smtp_bench_with_two_instances_on_postgresql(pg_database):
    """The scale-out measurement of the README at a small size: one then two instances, each run
    in a new database on the server (so the second does not count the first one's replies),
    dropped afterwards. The database it was given is left empty."""
    import psycopg

    def databases() -> set[str]:
        with psycopg.connect(pg_database) as conn:
            return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}

    before = databases()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "smtp_bench.py"), "--messages", "60", "--clients", "4",
                           "--instances", "1,2", "--workers", "2", "--database-url", pg_database],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("interpreter: CPython") and lines[1].split()[0] == "inst"
    rows = [line.split() for line in lines[2:] if line.strip()]
    assert [r[0] for r in rows] == ["1", "2"] and all(float(r[3]) > 0 for r in rows)
    assert all(0 <= float(r[-1]) < 120 for r in rows)  # every reply delivered ("sent +s")
    assert databases() == before, "a run's scratch database was left behind"
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT to_regclass('inbound_messages')").fetchone() == (None,)


def test_drain_bench_with_two_instances_on_postgresql(pg_database):
    """The backlog measurement of the README at a small size: one then two instances drain the
    same number of waiting messages, each run in its own new database."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "drain_bench.py"), "--messages", "120",
                           "--instances", "1,2", "--database-url", pg_database],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[1].split() == ["inst", "messages", "msg/s", "total", "s", "bot", "CPU", "ms/msg"]
    rows = [line.split() for line in lines[2:] if line.strip()]
    assert [r[:2] for r in rows] == [["1", "120"], ["2", "120"]] and all(float(r[2]) > 0 for r in rows)


def test_the_migrations_build_exactly_the_models_schema(db_url):
    """The alembic revisions and the models agree (tables, columns, indexes): an index added or
    dropped in one place only would leave SQLite and PostgreSQL stores with other plans."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from store.models import Base

    store = Store(db_url)
    try:
        store.migrate()
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            indexes = {ix["name"] for table in ("requests", "outbox") for ix in inspect(conn).get_indexes(table)}
        assert {"ix_requests_requester_date", "ix_outbox_to_created"} <= indexes
        assert not {"ix_requests_requester_id", "ix_outbox_to_addr"} & indexes  # prefixes of the two above
    finally:
        store.dispose()


def test_my_requests_merge_the_branches_in_date_order(db_url, tmp_path):
    """'mes demandes' (`Pipeline.upcoming`): the requester's own upcoming requests and those at
    their installations, active only, in (date, time, id) order, each once, cut at the limit,
    then the undated ones; the branches are read as keys and only the kept rows are loaded."""
    from datetime import UTC, date, datetime, timedelta
    from datetime import time as clock

    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    from store.models import Installation, Request, Requester

    from .conftest import make_settings

    settings = make_settings(db_url, f"dir:{tmp_path / 'out'}")
    store = Store(db_url)
    prepare_store(store, settings)
    today = date.today()
    with store.session() as s:
        me = next(r for r in s.scalars(select(Requester).order_by(Requester.id)) if r.installations)
        site = me.installations[0].id
        other = s.scalars(select(Requester).where(Requester.id != me.id).order_by(Requester.id)).first()
        elsewhere = s.scalars(select(Installation.id).where(Installation.id != site).order_by(Installation.id)).first()
        now = datetime.now(UTC)

        def add(who, where, days, hour, status="submitted"):  # noqa: ANN001
            r = Request(requester_id=who.id, location_id=where, status=status, created_at=now, updated_at=now,
                        date=None if days is None else today + timedelta(days=days),
                        start_time=None if hour is None else clock(hour))
            s.add(r)
            s.flush()
            return r.id

        mine_late = add(me, elsewhere, 5, 15)        # own, at another site
        colleague = add(other, site, 5, 9)          # a colleague's, at my site: listed
        mine_here = add(me, site, 2, 10)            # own and at my site: listed once
        stranger = add(other, elsewhere, 1, 8)      # a stranger's elsewhere: not listed
        add(me, site, 3, 8, status="cancelled")     # not active
        add(me, site, -2, 8)                        # past
        same_time = add(me, elsewhere, 5, 9)        # same start as the colleague's: by id
        undated = add(me, site, None, 7)            # no date: after the dated ones, whatever its time
        no_time = add(me, elsewhere, 5, None)       # a date without a time: first on its day
        undated_2 = add(me, elsewhere, None, None)
        strangers_undated = add(other, elsewhere, None, None)
        loner = Requester(email="loner@example.org", name="Sans Installation")
        s.add(loner)
        s.flush()
        lonely = add(loner, elsewhere, 4, 11)
        staff = Requester(email="coordination@example.org", name="Coordination", role="staff")
        s.add(staff)
        s.flush()
        me_id, loner_id, staff_id = me.id, loner.id, staff.id
    pipeline = Pipeline(store, settings)
    try:
        with store.session() as s:
            me = s.get(Requester, me_id)
            mine = [mine_here, no_time, colleague, same_time, mine_late, undated, undated_2]
            assert [r.id for r in pipeline.upcoming(s, me)] == mine
            assert [r.id for r in pipeline.upcoming(s, me, limit=2)] == [mine_here, no_time]
            assert [r.id for r in pipeline.upcoming(s, me, limit=6)] == mine[:6]  # the cut falls in the undated
            first = pipeline.upcoming(s, me)[0]
            assert (first.requester_id, first.location_id, first.status) == (me_id, site, "submitted")
            assert first.created_at is not None  # a column the list does not load is still there when read
            loner = s.get(Requester, loner_id)
            assert loner.installations == []
            assert [r.id for r in pipeline.upcoming(s, loner)] == [lonely]
            everyone = [r.id for r in pipeline.upcoming(s, s.get(Requester, staff_id))]
            assert everyone[-3:] == [undated, undated_2, strangers_undated]  # staff: every requester's
            assert set(everyone) == {*mine, lonely, strangers_undated, stranger}
    finally:
        store.dispose()
