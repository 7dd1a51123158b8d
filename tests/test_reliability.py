"""Failure, loop and abuse: nothing lost, nothing duplicated, nobody let in."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from store.db import Store, utcnow
from store.models import InboundMessage, Outbox, Request, Requester

from .conftest import ROOT, free_port, make_settings, running_bot, wait_for
from .test_email_loop import BOT, SOPHIE, complete_request, count, in_days, make_mail, send, text_of


def test_crash_safety_under_sigkill_small_run(tmp_path):
    """bench/crash_test.py at a small size (the full-size run is recorded in the README)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "crash_test.py"), "--messages", "150",
                           "--clients", "3", "--kills", "2", "--database-url", f"sqlite:///{tmp_path / 'c.db'}"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "lost                         0" in proc.stdout and "duplicated                   0" in proc.stdout


class LoopingPeer:
    """The relay the bot sends to, which answers every reply it gets — in one of three bad ways."""

    def __init__(self, mode: str, bot_port: int) -> None:
        self.mode, self.bot_port = mode, bot_port
        self.received = 0
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        self.received += 1
        original = message_from_bytes(envelope.content, policy=default_policy)
        threading.Thread(target=self._answer, args=(original, envelope.mail_from, envelope.rcpt_tos[0]),
                         daemon=True).start()
        return "250 OK"

    def _answer(self, original, return_path: str, rcpt: str) -> None:  # noqa: ANN001
        import smtplib
        m = EmailMessage()
        if self.mode == "bounce":
            raw = (f"From: MAILER-DAEMON@mx.example.org\r\nTo: {return_path}\r\nSubject: Undelivered Mail\r\n"
                   f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
                   f"boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n--B\r\n"
                   f"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
                   f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n").encode()
            sender, to = "", return_path
        else:
            m["From"] = rcpt
            m["To"] = BOT
            m["Subject"] = ("Réponse automatique : " if self.mode == "headers" else "RE: ") + str(original["Subject"])
            if self.mode == "headers":
                m["Auto-Submitted"] = "auto-replied"
                m.set_content("Je suis absente du bureau.")
            else:  # a broken auto-responder: no header at all, our whole reply echoed unquoted
                m.set_content(original.get_body(preferencelist=("plain",)).get_content())
            sender, to = rcpt, BOT
            raw = m.as_bytes()
        try:
            with smtplib.SMTP("127.0.0.1", self.bot_port, timeout=10) as c:
                c.sendmail(sender, [to], raw)
        except (OSError, smtplib.SMTPException):
            pass


@pytest.mark.parametrize("mode", ["headers", "echo", "bounce"])
async def test_mail_loops_stop_by_themselves(db_url, mode):
    settings = make_settings(db_url, "smtp://127.0.0.1:1")
    async with running_bot(settings) as service:
        peer = LoopingPeer(mode, service.port)
        peer.controller.start()
        service.sender.target.port = peer.port
        try:
            await send(service.port, make_mail(complete_request(in_days(10))))
            await wait_for(lambda: peer.received >= 1)
            await asyncio.sleep(2.0)
            assert peer.received == 1, f"the exchange went on: {peer.received} messages"
            await wait_for(lambda: count(service.store, InboundMessage) == 2)
            with service.store.session() as s:
                second = s.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
                assert second.state == "ignored", second.outcome
        finally:
            peer.controller.stop()


def test_hard_bounces_mark_an_address_undeliverable(db_url, tmp_path):
    from bot.intake import store_inbound
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    settings = make_settings(db_url, f"dir:{tmp_path}")
    store = Store(db_url)
    prepare_store(store, settings)
    for i in range(3):
        store_inbound(store, make_mail(complete_request(in_days(10 + i))).as_bytes(), mail_from=SOPHIE, rcpt_to=[BOT])
    pipeline = Pipeline(store, settings)
    pipeline.process_pending()
    with store.session() as s:
        outbox_ids = list(s.scalars(select(Outbox.id)))
    for n, oid in enumerate(outbox_ids):
        bounce = (f"From: MAILER-DAEMON@mx.example.org\r\nTo: {settings.verp_address(oid)}\r\nSubject: failure\r\n"
                  f"Message-ID: <b{n}@mx>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
                  f"report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
                  f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
                  f"Final-Recipient: rfc822; {SOPHIE}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n").encode()
        # a request from the same person first: her cached row, a bounce behind, joins the batch
        store_inbound(store, make_mail(complete_request(in_days(20 + n))).as_bytes(), mail_from=SOPHIE,
                      rcpt_to=[BOT])
        store_inbound(store, bounce, mail_from="", rcpt_to=[settings.verp_address(oid)])
        pipeline.process_pending()
    with store.session() as s:
        sophie = s.scalar(select(Requester).where(Requester.email == SOPHIE))
        assert sophie.bounces == 3 and sophie.undeliverable
        outcomes = [r.outcome for r in s.scalars(select(InboundMessage).where(InboundMessage.mid_key.like("<b%")))]
    assert all("hard bounce of outbox" in o for o in outcomes) and len(outcomes) == 3
    store.dispose()


async def test_logs_never_contain_bodies_names_or_phones(db_url, sink, caplog):
    caplog.set_level(logging.DEBUG)
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}")
    async with running_bot(settings) as service:
        secret_bits = ["Zébulon Tartempion", "514-555-0177", "chimiothérapie", "grossesse", "Parc-Extension"]
        body = (complete_request(in_days(10)) + "\nL'usager Zébulon Tartempion, en chimiothérapie. Merci d'aviser "
                "l'usager au 514-555-0177.")
        await send(service.port, make_mail(body, subject="Demande pour Zébulon Tartempion"))
        await send(service.port, make_mail("bonjour", sender="inconnu@example.org", subject="514-555-0177"),
                   sender="inconnu@example.org")
        await wait_for(lambda: count(service.store, InboundMessage, InboundMessage.state != "new") == 2)
        await wait_for(lambda: sink.messages)
    logs = caplog.text
    assert "inbound 1" in logs  # the run was logged…
    for bit in secret_bits:
        assert bit not in logs, f"{bit!r} leaked into the logs"  # …without any personal detail


def test_purge_erases_details_and_keeps_statistics(db_url, tmp_path, capsys, monkeypatch):
    from bot.cli import main
    from bot.intake import store_inbound
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    settings = make_settings(db_url, f"dir:{tmp_path}")
    store = Store(db_url)
    prepare_store(store, settings)
    body = complete_request(in_days(10)) + "\nMerci d'aviser l'usager au 514-555-0177."
    store_inbound(store, make_mail(body).as_bytes(), mail_from=SOPHIE, rcpt_to=[BOT])
    Pipeline(store, settings).process_pending()
    long_ago = utcnow() - timedelta(days=800)
    with store.session() as s:
        for row in s.scalars(select(InboundMessage)):
            row.received_at = long_ago
        for row in s.scalars(select(Request)):
            row.updated_at = long_ago
        for row in s.scalars(select(Outbox)):
            row.created_at, row.state = long_ago, "sent"
    monkeypatch.setenv("BIQ_DATABASE_URL", db_url)
    assert main(["purge", "--older-than", "2y"]) == 0
    out = capsys.readouterr().out
    assert "raw messages erased: 1" in out and "requests anonymised (contact and health details erased): 1" in out
    with store.session() as s:
        req = s.scalars(select(Request)).one()
        assert (req.user_phone, req.reason) == (None, None)
        assert req.date == in_days(10) and req.target_language == "es"  # statistics remain
        assert s.scalars(select(InboundMessage)).one().raw == b""
    assert main(["purge", "--older-than", "soon"]) == 2
    store.dispose()


async def test_30mb_message_is_refused_with_552(bot):
    big = make_mail("x")
    big.add_attachment(b"\0" * (30 * 1024 * 1024), maintype="application", subtype="octet-stream", filename="big.bin")
    with pytest.raises(aiosmtplib.SMTPResponseException) as err:
        await send(bot.port, big)
    assert err.value.code == 552


async def test_header_injection_cannot_reach_outgoing_headers(bot, sink):
    raw = (f"From: =?utf-8?q?Evil=0D=0ABcc=3A_victim=40example=2Eorg?= <{SOPHIE}>\r\nTo: {BOT}\r\n"
           f"Subject: =?utf-8?q?Demande=0D=0ABcc=3A_victim2=40example=2Eorg?=\r\nMessage-ID: <inj@test>\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\n{complete_request(in_days(10))}\r\n").encode()
    await send(bot.port, raw)
    reply = (await wait_for(lambda: sink.messages))[0]
    assert reply["Bcc"] is None and "victim" not in str(reply["To"])
    assert sink.envelopes[0][1] == [SOPHIE]


async def test_html_in_a_request_is_escaped_in_html_replies(bot, sink):
    body = complete_request(in_days(10)).replace("Merci", "Merci <script>alert(1)</script>")
    await send(bot.port, make_mail(body + "\nInterprète à prioriser : <b>Mme X</b> Y"))
    reply = (await wait_for(lambda: sink.messages))[0]
    html = reply.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html and "<b>Mme" not in html
    assert "Demande reçue" in reply["Subject"] and text_of(reply)


def test_authentication_results_required_when_configured(db_url, tmp_path):
    from bot.intake import store_inbound
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    settings = make_settings(db_url, f"dir:{tmp_path}", trusted_authserv_id="mx.ssss.gouv.qc.ca")
    store = Store(db_url)
    prepare_store(store, settings)
    spoofed = make_mail(complete_request(in_days(10)),
                        headers={"Authentication-Results": "mx.ssss.gouv.qc.ca; dkim=fail; dmarc=fail"})
    forged = make_mail(complete_request(in_days(11)),
                       headers={"Authentication-Results": "evil.example; dkim=pass; dmarc=pass"})
    genuine = make_mail(complete_request(in_days(12)),
                        headers={"Authentication-Results": "mx.ssss.gouv.qc.ca; dkim=pass header.d=ssss.gouv.qc.ca; "
                                                           "dmarc=pass"})
    for m in (spoofed, forged, genuine):
        store_inbound(store, m.as_bytes(), mail_from=SOPHIE, rcpt_to=[BOT])
    Pipeline(store, settings).process_pending()
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Request)) == 1
        outcomes = [r.outcome for r in s.scalars(select(InboundMessage).order_by(InboundMessage.id))]
    assert "not authenticated" in outcomes[0] and "not authenticated" in outcomes[1]
    store.dispose()
