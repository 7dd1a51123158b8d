"""The email loop end to end: a real SMTP client → the running bot → a real SMTP sink (or a folder).

Every test runs on SQLite and on PostgreSQL (the `db_url` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import ssl
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import aiosmtplib
import psycopg
import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import func, select

from bot.outbox import Sender
from bot.replies import format_date
from store.db import Store, utcnow
from store.models import InboundMessage, Outbox, Request, RequestEvent

from .conftest import Sink, free_port, make_settings, running_bot, wait_for

TZ = ZoneInfo("America/Montreal")
SOPHIE = "sophie.tremblay.ccomtl@ssss.gouv.qc.ca"
JENNIFER = "jennifer.smith.comtl@ssss.gouv.qc.ca"
BOT = "biq@ssss.gouv.qc.ca"


def in_days(n: int) -> date:
    return datetime.now(TZ).date() + timedelta(days=n)


def make_mail(body: str, *, sender: str = SOPHIE, subject: str = "Demande d'interprète", headers: dict | None = None,
              in_reply_to: str | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"] = f"Test <{sender}>"
    m["To"] = BOT
    m["Subject"] = subject
    m["Date"] = format_datetime(datetime.now(TZ))
    m["Message-ID"] = make_msgid(domain="test.example")
    if in_reply_to:
        m["In-Reply-To"] = in_reply_to
        m["References"] = in_reply_to
    for k, v in (headers or {}).items():
        m[k] = v
    m.set_content(body)
    return m


async def send(port: int, msg: EmailMessage | bytes, sender: str = SOPHIE, rcpt: str = BOT):
    raw = msg if isinstance(msg, bytes) else msg.as_bytes()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20) as client:
        return await client.sendmail(sender, [rcpt], raw)  # sender "" is the null sender <> of bounces


def count(store: Store, model, *where) -> int:  # noqa: ANN001
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def text_of(msg) -> str:  # noqa: ANN001
    return msg.get_body(preferencelist=("plain",)).get_content()


def complete_request(d: date) -> str:
    return (f"Bonjour,\n\nJ'aurais besoin d'un interprète en espagnol le {format_date(d, 'fr')} à 13h30, "
            "durée 1h30, en présentiel au CLSC de Parc-Extension. C'est pour un suivi de grossesse.\n\nMerci\nSophie")


async def test_complete_request_gets_submitted_reply(bot, sink):
    msg = make_mail(complete_request(in_days(10)))
    await send(bot.port, msg)
    await wait_for(lambda: sink.messages)
    reply = sink.messages[0]
    assert reply["Subject"].startswith("[BIQ-") and "Demande reçue" in reply["Subject"]
    assert reply["In-Reply-To"] == msg["Message-ID"]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert sink.envelopes[0][1] == [SOPHIE]
    body = text_of(reply)
    for expected in ("espagnol", "13:30", "90 min", "CLSC de Parc-Extension", "en présentiel"):
        assert expected in body
    assert reply.get_body(preferencelist=("html",)) is not None
    with bot.store.session() as s:
        req = s.scalars(select(Request)).one()
        assert req.status == "submitted" and req.ref in reply["Subject"]
        assert req.date == in_days(10) and req.duration_minutes == 90 and req.target_language == "es"


async def test_incomplete_then_completed_by_reply(bot, sink):
    d = in_days(12)
    first = make_mail(f"Bonjour, j'aurais besoin d'un interprète en arabe le {format_date(d, 'fr')} à 10h.\n"
                      "Emplacement : CLSC Ahuntsic\n\nMerci", sender="karine.gauthier.cnmtl@ssss.gouv.qc.ca")
    await send(bot.port, first, sender="karine.gauthier.cnmtl@ssss.gouv.qc.ca")
    await wait_for(lambda: sink.messages)
    incomplete = sink.messages[0]
    assert "Demande incomplète" in incomplete["Subject"]
    body = text_of(incomplete)
    assert "durée" in body and "mode" in body
    ref = incomplete["Subject"].split("]")[0].strip("[")
    quoted = "\n".join("> " + line for line in body.splitlines())
    answer = make_mail(f"Durée 1h, en présentiel.\n\n{quoted}", sender="karine.gauthier.cnmtl@ssss.gouv.qc.ca",
                       subject=f"RE: {incomplete['Subject']}", in_reply_to=incomplete["Message-ID"])
    await send(bot.port, answer, sender="karine.gauthier.cnmtl@ssss.gouv.qc.ca")
    await wait_for(lambda: len(sink.messages) >= 2)
    done = sink.messages[1]
    assert done["Subject"] == f"[{ref}] Demande reçue"
    assert count(bot.store, Request) == 1
    with bot.store.session() as s:
        req = s.scalars(select(Request)).one()
        assert (req.status, req.ref, req.duration_minutes, req.mode) == ("submitted", ref, 60, "in_person")


async def test_unknown_sender_gets_access_reply_and_no_request(bot, sink):
    await send(bot.port, make_mail(complete_request(in_days(9)), sender="someone@gmail.com"), sender="someone@gmail.com")
    await wait_for(lambda: sink.messages)
    assert "accès" in sink.messages[0]["Subject"].lower() or "access" in sink.messages[0]["Subject"].lower()
    assert count(bot.store, Request) == 0


BOUNCE = b"""From: MAILER-DAEMON@mx.example.org
To: biq@ssss.gouv.qc.ca
Subject: Undelivered Mail Returned to Sender
Date: Fri, 20 Nov 2026 12:00:03 -0500
Message-ID: <bounce-1@mx.example.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.
--B
Content-Type: message/delivery-status

Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1

--B--
"""


async def test_auto_reply_and_bounce_are_stored_but_not_answered(bot, sink):
    ooo = make_mail("Je suis absente jusqu'au 30 novembre.", subject="Réponse automatique : [BIQ-000001]",
                    headers={"Auto-Submitted": "auto-replied"})
    await send(bot.port, ooo)
    await send(bot.port, BOUNCE, sender="")
    listed = make_mail(complete_request(in_days(9)), headers={"List-Id": "<infolettre.example.org>",
                                                              "Precedence": "bulk"})
    await send(bot.port, listed)
    await wait_for(lambda: count(bot.store, InboundMessage, InboundMessage.state == "ignored") == 3)
    await asyncio.sleep(0.3)
    assert sink.messages == []
    assert count(bot.store, Request) == 0
    assert count(bot.store, InboundMessage) == 3


async def test_same_message_twice_gives_one_request_and_one_reply(bot, sink):
    msg = make_mail(complete_request(in_days(15)))
    await send(bot.port, msg)
    await send(bot.port, msg)
    await wait_for(lambda: sink.messages)
    await wait_for(lambda: count(bot.store, InboundMessage, InboundMessage.state == "new") == 0)
    await asyncio.sleep(0.3)
    assert len(sink.messages) == 1
    assert count(bot.store, Request) == 1
    assert count(bot.store, InboundMessage) == 1


async def test_unknown_recipient_is_refused(bot):
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await send(bot.port, make_mail("x"), rcpt="someone-else@ssss.gouv.qc.ca")


async def test_addresses_parsed_once_still_checked_every_time(bot):
    """MAIL and RCPT addresses are parsed once per distinct address (BotSMTP): a malformed one
    is refused on every attempt, a good one accepted, and the memo stays bounded."""
    from bot.smtp_server import BotSMTP

    BotSMTP._parsed.clear()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=bot.port, timeout=20) as client:
        for _ in range(2):
            code, _ = await client.execute_command(b"MAIL", b"FROM:<<x>")
            assert code == 553
            code, _ = await client.execute_command(b"MAIL", b"FROM:<a@[b>")  # trips aiosmtpd's parser
            assert code == 553
        for _ in range(2):
            code, _ = await client.execute_command(b"MAIL", f"FROM:<{SOPHIE}>".encode())
            assert code == 250
            code, _ = await client.execute_command(b"RCPT", b"TO:<someone-else@ssss.gouv.qc.ca>")
            assert code == 550
            code, _ = await client.execute_command(b"RCPT", f"TO:<{BOT}>".encode())
            assert code == 250
            await client.rset()
    assert ("<<x>", 0) in BotSMTP._parsed and len(BotSMTP._parsed) == 5
    for i in range(BotSMTP._PARSED_MAX + 5):
        _probe()._getaddr(f"<u{i}@example.org>")
    assert len(BotSMTP._parsed) <= BotSMTP._PARSED_MAX


def _probe():
    """A BotSMTP without a connection, to call its address parser directly."""
    from bot.smtp_server import BotSMTP
    probe = BotSMTP.__new__(BotSMTP)
    probe.local_part_limit = 0
    return probe


async def test_store_unavailable_answers_451_then_recovers(bot, sink, db_url):
    msg = make_mail(complete_request(in_days(20)))
    with _store_down(db_url):
        with pytest.raises(aiosmtplib.SMTPDataError) as err:
            await send(bot.port, msg)
        assert err.value.code == 451
    assert count(bot.store, InboundMessage) == 0
    await send(bot.port, msg)  # the sending server retries later
    await wait_for(lambda: sink.messages)
    assert count(bot.store, Request) == 1


@contextlib.contextmanager
def _store_down(db_url: str):
    """Make the real store refuse writes: an exclusive SQLite lock, or a PostgreSQL database closed."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    base, name = db_url.rsplit("/", 1)
    admin = psycopg.connect(base + "/postgres", autocommit=True)
    admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    try:
        yield
    finally:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()


async def test_relay_down_reply_waits_and_goes_out_once(db_url):
    port = free_port()
    settings = make_settings(db_url, f"smtp://127.0.0.1:{port}")
    sink = None
    try:
        async with running_bot(settings) as service:
            await send(service.port, make_mail(complete_request(in_days(8))))
            await wait_for(lambda: count(service.store, Outbox, Outbox.attempts >= 2, Outbox.state == "pending"))
            sink = Sink(port).start()  # the relay comes back
            await wait_for(lambda: sink.messages)
            await wait_for(lambda: count(service.store, Outbox, Outbox.state == "sent") == 1)
            await asyncio.sleep(0.5)
            assert len(sink.messages) == 1
    finally:
        if sink:
            sink.stop()


async def test_relay_permanent_failure_is_recorded(db_url):
    class Refusing(Sink):
        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: ANN001
            return "550 5.1.1 No such user"

    sink = Refusing().start()
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}")
    try:
        async with running_bot(settings) as service:
            await send(service.port, make_mail(complete_request(in_days(8))))
            await wait_for(lambda: count(service.store, Outbox, Outbox.state == "failed") == 1)
            with service.store.session() as s:
                row = s.scalars(select(Outbox)).one()
                assert row.attempts == 1 and "550" in row.last_error
    finally:
        sink.stop()


class PeerSink(Sink):
    """A relay that notes which connection each message came on, and how the client greeted it."""

    def __init__(self, answers: dict[int, str] | None = None, **smtp_options) -> None:  # noqa: ANN003
        super().__init__(**smtp_options)
        self.peers: list[tuple] = []
        self.greetings: set[str] = set()
        self.secured: list[bool] = []
        self.answers = answers or {}  # n-th DATA (1-based) → the answer given instead of 250
        self.data_seen = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        self.data_seen += 1
        if self.data_seen in self.answers:
            return self.answers[self.data_seen]
        self.peers.append(session.peer)
        self.greetings.add(session.host_name)
        self.secured.append(session.ssl is not None and session.authenticated)
        return await super().handle_DATA(server, session, envelope)


def queue_replies(store: Store, n: int, to: str = "a@example.org", key: str = "k") -> list[int]:
    now = utcnow()
    with store.session() as s:
        rows = [Outbox(dedupe_key=f"{key}{i}", channel="email", kind="submitted", to_addr=to.replace("@", f"{i}@"),
                       message=f"Subject: reply {i}\r\n\r\nhello\r\n".encode(), next_attempt_at=now, created_at=now)
                for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


async def test_a_pass_of_replies_goes_to_the_relay_over_a_few_open_connections(db_url):
    sink = PeerSink().start()
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}", outbound_connections=3)
    store = Store(db_url)
    store.migrate()
    try:
        ids = queue_replies(store, 12)
        sender = Sender(store, settings)
        assert await sender.deliver_due(50) == 12
        assert sorted(m["Subject"] for m in sink.messages) == sorted(f"reply {i}" for i in range(12))
        assert sorted(env[0] for env in sink.envelopes) == sorted(settings.verp_address(i) for i in ids)
        assert 1 <= len(set(sink.peers)) <= 3  # connections kept open, not one per reply
        assert sink.greetings == {settings.bot_domain}  # EHLO with the bot's own name
        assert count(store, Outbox, Outbox.state == "sent", Outbox.attempts == 1) == 12
        assert await sender.deliver_due(50) == 0  # nothing delivered twice
        assert len(sink.messages) == 12
    finally:
        store.dispose()
        sink.stop()


async def test_replies_go_to_a_relay_that_requires_starttls_and_a_login(db_url, tmp_path, monkeypatch):
    """The relay of a real deployment: port 587, STARTTLS, then AUTH; a certificate the sender
    checks (here from a test CA, trusted through SSL_CERT_FILE as a system's CA bundle would be)."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    logins: list[bool] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
        logins.append(auth_data == LoginPassword(b"biq", b"s3cret"))
        return AuthResult(success=logins[-1])

    sink = PeerSink(tls_context=server_tls, require_starttls=True, authenticator=authenticator,
                    auth_require_tls=True).start()
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}?starttls=true", smtp_user="biq",
                             smtp_password="s3cret", outbound_connections=2)
    store = Store(db_url)
    store.migrate()
    try:
        queue_replies(store, 6)
        assert await Sender(store, settings).deliver_due(50) == 6
        assert len(sink.messages) == 6 and all(sink.secured)  # each over TLS, after a login
        assert logins == [True] * len(set(sink.peers)) and len(logins) <= 2  # a handshake per connection
    finally:
        store.dispose()
        sink.stop()


async def test_a_refused_reply_fails_alone_and_a_closed_connection_is_reopened(db_url):
    sink = PeerSink({3: "550 5.7.1 Refused", 5: "421 4.3.2 Closing this connection"}).start()
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}", outbound_connections=1)
    store = Store(db_url)
    store.migrate()
    try:
        ids = queue_replies(store, 8)
        assert await Sender(store, settings).deliver_due(50) == 6
        assert len(sink.messages) == 6 and len(set(sink.peers)) == 2  # one reopened after the 421
        with store.session() as s:
            rows = {r.id: r for r in s.scalars(select(Outbox))}
        assert rows[ids[2]].state == "failed" and "550" in rows[ids[2]].last_error
        assert rows[ids[4]].state == "pending" and "421" in rows[ids[4]].last_error  # retried later
        assert rows[ids[4]].next_attempt_at > utcnow().replace(tzinfo=rows[ids[4]].next_attempt_at.tzinfo)
        assert all(rows[i].state == "sent" for i in ids if i not in (ids[2], ids[4]))
    finally:
        store.dispose()
        sink.stop()


async def test_an_unreachable_relay_leaves_every_reply_to_retry(db_url):
    settings = make_settings(db_url, f"smtp://127.0.0.1:{free_port()}", outbound_connections=2)
    store = Store(db_url)
    store.migrate()
    try:
        queue_replies(store, 5)
        assert await Sender(store, settings).deliver_due(50) == 0
        with store.session() as s:
            rows = s.scalars(select(Outbox)).all()
        assert len(rows) == 5
        assert all(r.state == "pending" and r.attempts == 1 and r.last_error.startswith("no connection to the relay")
                   for r in rows)
    finally:
        store.dispose()


async def test_folder_target_writes_eml(db_url, tmp_path: Path):
    settings = make_settings(db_url, f"dir:{tmp_path / 'out'}")
    async with running_bot(settings) as service:
        await send(service.port, make_mail(complete_request(in_days(8))))
        files = await wait_for(lambda: list((tmp_path / "out").glob("*.eml")))
        assert len(files) == 1
        content = files[0].read_bytes()
        assert b"Subject: [BIQ-" in content and b"Auto-Submitted: auto-replied" in content


async def test_replies_per_sender_are_capped(db_url, sink):
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}", replies_per_sender_per_hour=3)
    async with running_bot(settings) as service:
        for _ in range(6):
            await send(service.port, make_mail("mes demandes", subject="mes demandes"))
        await wait_for(lambda: count(service.store, InboundMessage, InboundMessage.state == "done") == 6)
        await asyncio.sleep(0.5)
        assert len(sink.messages) == 3


async def test_cancel_by_reply(bot, sink):
    await send(bot.port, make_mail(complete_request(in_days(10))))
    await wait_for(lambda: sink.messages)
    first = sink.messages[0]
    await send(bot.port, make_mail("annuler\n\nSophie", subject=f"RE: {first['Subject']}",
                                   in_reply_to=first["Message-ID"]))
    await wait_for(lambda: len(sink.messages) >= 2)
    assert "annulée" in sink.messages[1]["Subject"]
    with bot.store.session() as s:
        assert s.scalars(select(Request)).one().status == "cancelled"


async def test_a_change_asked_for_but_not_understood_changes_nothing_and_says_so(bot, sink):
    await send(bot.port, make_mail(complete_request(in_days(10))))
    await wait_for(lambda: sink.messages)
    first = sink.messages[0]
    await send(bot.port, make_mail("Bonjour, est-il possible de décaler le rendez-vous d'une semaine?\n\nSophie",
                                   subject=f"RE: {first['Subject']}", in_reply_to=first["Message-ID"]))
    await wait_for(lambda: len(sink.messages) >= 2)
    assert "inchangée" in sink.messages[1]["Subject"] and "pas pu lire" in text_of(sink.messages[1])
    with bot.store.session() as s:
        req = s.scalars(select(Request)).one()
        assert (req.status, req.date) == ("submitted", in_days(10))
        actions = s.scalars(select(RequestEvent.action).where(RequestEvent.request_id == req.id)).all()
        assert "modified" not in actions


async def test_one_message_cancels_each_request_it_cites(bot, sink):
    """'Please cancel BIQ-… and BIQ-…': both are cancelled, each with its own reply; a third cited
    request that belongs to another installation is left alone."""
    await send(bot.port, make_mail(complete_request(in_days(10))))
    await send(bot.port, make_mail(complete_request(in_days(12))))
    await wait_for(lambda: len(sink.messages) == 2)
    lakeshore = complete_request(in_days(14)).replace("au CLSC de Parc-Extension", "à l'Hôpital général du Lakeshore")
    await send(bot.port, make_mail(lakeshore, sender=JENNIFER), sender=JENNIFER)
    await wait_for(lambda: len(sink.messages) == 3)
    with bot.store.session() as s:
        refs = [r.ref for r in s.scalars(select(Request).order_by(Request.id))]
    other_ref = refs.pop()
    await send(bot.port, make_mail(f"Hi, please cancel {refs[0]} and {refs[1]} and {other_ref}, the family moved.",
                                   subject="Cancellations"))
    await wait_for(lambda: len(sink.messages) >= 5)
    await asyncio.sleep(0.3)
    assert len(sink.messages) == 5
    assert sorted(m["Subject"].split("]")[0].strip("[") for m in sink.messages[3:]) == sorted(refs)
    with bot.store.session() as s:
        statuses = {r.ref: r.status for r in s.scalars(select(Request))}
    assert (statuses[refs[0]], statuses[refs[1]], statuses[other_ref]) == ("cancelled", "cancelled", "submitted")


async def test_same_start_again_is_flagged_not_merged_and_a_cancelled_one_does_not_count(bot, sink):
    """Rule 9: a second request from the same requester, same language and start, is stored and
    flagged as a possible duplicate of the active one, never merged; a cancelled one is no
    longer a duplicate's original."""
    body = complete_request(in_days(11))
    await send(bot.port, make_mail(body))
    await wait_for(lambda: sink.messages)
    with bot.store.session() as s:
        first = s.scalars(select(Request)).one()
        assert first.duplicate_of is None
        first.status = "cancelled"
    await send(bot.port, make_mail(body))
    await wait_for(lambda: len(sink.messages) >= 2)
    await send(bot.port, make_mail(body))
    await wait_for(lambda: len(sink.messages) >= 3)
    with bot.store.session() as s:
        reqs = s.scalars(select(Request).order_by(Request.id)).all()
    assert [r.duplicate_of for r in reqs] == [None, None, reqs[1].id]
    assert "semblable existe déjà" not in text_of(sink.messages[1])
    assert f"semblable existe déjà ({reqs[1].ref}" in text_of(sink.messages[2])


async def test_requester_cannot_cancel_another_installations_request(bot, sink):
    await send(bot.port, make_mail(complete_request(in_days(10))))
    await wait_for(lambda: sink.messages)
    ref = sink.messages[0]["Subject"].split("]")[0].strip("[")
    await send(bot.port, make_mail(f"Please cancel {ref}.", sender=JENNIFER, subject="Cancel"), sender=JENNIFER)
    await wait_for(lambda: len(sink.messages) >= 2)
    assert "not found" in sink.messages[1]["Subject"].lower() or "introuvable" in sink.messages[1]["Subject"].lower()
    with bot.store.session() as s:
        assert s.scalars(select(Request)).one().status == "submitted"
