"""The chat channel: python-telegram-bot's real Application and HTTP client against a local Bot API
server, with the whole bot running (SMTP in, pipeline, outbox to a real SMTP sink)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from telegram.ext import Application

from bot.outbox import Sender
from bot.reports import billing
from store.db import Store, utcnow
from store.models import LinkCode, Outbox, Request

from .conftest import make_settings, running_bot, wait_for
from .fake_bot_api import FakeBotApi
from .test_email_loop import SOPHIE, format_date, in_days, make_mail, send, text_of

STAFF = 600000001
MARIA = 700000001  # int-001, speaks es and pt
AHMAD = 700000002
STRANGER = 555000111
KARINE = "karine.gauthier.cnmtl@ssss.gouv.qc.ca"  # notifications off in the sample directory


@pytest.fixture
async def chatbot(db_url, sink):
    api = FakeBotApi().start()
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}", telegram_token=api.token,
                             telegram_api_url=api.base_url)
    try:
        async with running_bot(settings) as service:
            service.api = api
            yield service
    finally:
        api.stop()


def spanish_request(d, time_text: str = "10h") -> str:
    return (f"Bonjour, j'aurais besoin d'un interprète en espagnol le {format_date(d, 'fr')} à {time_text}, "
            "durée 1h, en présentiel au CLSC de Parc-Extension.\n\nMerci")


async def reply_to(api: FakeBotApi, chat: int, count: int = 1) -> list[dict]:
    return await wait_for(lambda: len(api.messages_to(chat)) >= count and api.messages_to(chat))


async def test_whole_story_email_offer_accept_confirm_late_cancel_billing(chatbot, sink):
    api = chatbot.api
    await send(chatbot.port, make_mail(spanish_request(in_days(1))))
    await wait_for(lambda: sink.messages)
    first = sink.messages[0]
    ref = first["Subject"].split("]")[0].strip("[")
    assert "Demande reçue" in first["Subject"]

    api.push_text(STAFF, f"/offer {ref} maria lopez")
    answer = (await reply_to(api, STAFF))[0]
    assert "María Fernanda López" in answer["text"] and "⚠" not in answer["text"]
    offer = (await reply_to(api, MARIA))[0]  # the interpreter is asked, with single-use buttons
    buttons = offer["reply_markup"]["inline_keyboard"][0]
    accept = next(b["callback_data"] for b in buttons if "accepte" in b["text"])
    await wait_for(lambda: any("Interprète sollicité" in m["Subject"] for m in sink.messages))

    api.push_callback(MARIA, accept)
    await wait_for(lambda: any("confirmée" in m["Subject"] for m in sink.messages))
    confirmed = next(m for m in sink.messages if "confirmée" in m["Subject"])
    ics = [p for p in confirmed.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(ics) == 1
    cal = ics[0].get_content()
    cal = cal.decode() if isinstance(cal, bytes) else cal
    assert "DTSTART" in cal and ref in cal and "grossesse" not in cal.lower()

    api.push_callback(MARIA, accept)  # the same button again: refused, nothing changes
    await wait_for(lambda: any("plus valide" in m["text"] for m in api.messages_to(MARIA)))

    await send(chatbot.port, make_mail("annuler", subject=f"RE: {confirmed['Subject']}",
                                       headers={"In-Reply-To": confirmed["Message-ID"]}))
    cancelled = await wait_for(lambda: next((m for m in sink.messages if "annulée" in m["Subject"]), None))
    assert "facturée" in text_of(cancelled)
    with chatbot.store.session() as s:
        req = s.scalars(select(Request)).one()
        assert req.status == "cancelled" and req.late_cancellation
        month = req.date.strftime("%Y-%m")
        lines = billing(s, month)
    assert len(lines) == 1 and lines[0].late_cancellations == 1 and lines[0].late_minutes == 60
    assert "CIUSSS du Centre-Ouest" in lines[0].establishment


async def test_staff_commands_are_refused_to_others_and_buttons_cannot_be_forged(chatbot, sink):
    api = chatbot.api
    await send(chatbot.port, make_mail(spanish_request(in_days(5))))
    await wait_for(lambda: sink.messages)
    ref = sink.messages[0]["Subject"].split("]")[0].strip("[")
    for cmd in ("/pending", f"/show {ref}", f"/offer {ref} int-001", f"/cancel {ref}", f"/complete {ref}",
                f"/unfilled {ref}", f"/comm {ref} 10", "/search lang:es"):
        api.push_text(STRANGER, cmd)
    replies = await reply_to(api, STRANGER, 8)
    assert all("réservée à l'équipe" in m["text"] for m in replies), [m["text"] for m in replies]

    api.push_text(STAFF, f"/offer {ref} int-001")
    await reply_to(api, MARIA)
    api.push_text(AHMAD, f"/accept {ref}")  # an interpreter it was not offered to
    assert "ne vous a pas été offerte" in (await reply_to(api, AHMAD))[0]["text"]
    api.push_callback(AHMAD, "cb:forged-token-123")
    await reply_to(api, AHMAD, 2)
    assert "plus valide" in api.messages_to(AHMAD)[1]["text"]
    with chatbot.store.session() as s:
        assert s.scalars(select(Request)).one().status == "offered"


async def test_requester_links_chat_and_sends_a_request(chatbot, sink):
    api = chatbot.api
    user = 812345678
    api.push_text(user, "Bonjour, interprète arabe demain")
    assert "/link" in (await reply_to(api, user))[0]["text"]
    api.push_text(user, f"/link {SOPHIE}")
    await reply_to(api, user, 2)
    code_mail = await wait_for(lambda: next((m for m in sink.messages if "Code" in m["Subject"]), None))
    code = text_of(code_mail).split("/verify ")[1].split()[0]
    api.push_text(user, "/verify 000000" if code != "000000" else "/verify 111111")
    assert "incorrect" in (await reply_to(api, user, 3))[2]["text"]
    api.push_text(user, f"/verify {code}")
    assert "relié" in (await reply_to(api, user, 4))[3]["text"]

    api.push_text(user, f"Il me faudrait un interprète en somali le {format_date(in_days(9), 'fr')} à 9h30, "
                        "1h, en présentiel au CLSC Côte-des-Neiges. Merci")
    ack = (await reply_to(api, user, 5))[4]
    assert "Nous avons bien reçu votre demande BIQ-" in ack["text"]
    ref = ack["text"].split("demande ")[1].split(".")[0]
    api.push_text(user, "/mine")
    assert ref in (await reply_to(api, user, 6))[5]["text"]
    api.push_text(user, f"/cancel {ref}")
    assert "annulée" in (await reply_to(api, user, 7))[6]["text"]
    with chatbot.store.session() as s:
        req = s.scalars(select(Request)).one()
        assert (req.channel, req.status) == ("telegram", "cancelled")

    # a swipe-reply to the bot's message acts on the request that message is about, like an email reply
    api.push_text(user, f"Interprète en somali le {format_date(in_days(10), 'fr')} à 9h30, 1h, en présentiel "
                        "au CLSC Côte-des-Neiges.")
    ack2 = (await reply_to(api, user, 8))[7]
    ref2 = ack2["text"].split("demande ")[1].split(".")[0]
    api.push_text(user, "annuler", reply_to=ack2)
    assert ref2 in (await reply_to(api, user, 9))[8]["text"]
    with chatbot.store.session() as s:
        assert {r.ref: r.status for r in s.scalars(select(Request))} == {ref: "cancelled", ref2: "cancelled"}


async def test_notifications_off_stops_status_notifications_but_not_action_needed(chatbot, sink):
    api = chatbot.api
    await send(chatbot.port, make_mail(spanish_request(in_days(6)), sender=KARINE), sender=KARINE)
    await wait_for(lambda: sink.messages)  # a direct reply is always sent
    ref = sink.messages[0]["Subject"].split("]")[0].strip("[")
    api.push_text(STAFF, f"/offer {ref} int-001")
    await reply_to(api, STAFF)
    await asyncio.sleep(0.8)
    assert len(sink.messages) == 1  # no "interpreter contacted" email: she turned them off
    incomplete = make_mail("Bonjour, interprète en arabe svp.", sender=KARINE)
    await send(chatbot.port, incomplete, sender=KARINE)
    await wait_for(lambda: len(sink.messages) == 2)
    assert "incomplète" in sink.messages[1]["Subject"]
    await send(chatbot.port, make_mail("activer les notifications", subject="notifications", sender=KARINE),
               sender=KARINE)
    await wait_for(lambda: len(sink.messages) == 3)
    api.push_text(STAFF, f"/cancel {ref} le rendez-vous est reporté")
    await wait_for(lambda: any("annulée" in m["Subject"] for m in sink.messages))


async def test_search_and_show_are_audited(chatbot, sink):
    api = chatbot.api
    await send(chatbot.port, make_mail(spanish_request(in_days(7))))
    await wait_for(lambda: sink.messages)
    d = in_days(7).isoformat()
    api.push_text(STAFF, f"/search date:{d}..{d} lang:es site:clsc-parc-extension status:submitted")
    assert "BIQ-000001" in (await reply_to(api, STAFF))[0]["text"]
    api.push_text(STAFF, "/search lang:ar")
    assert "Aucun résultat" in (await reply_to(api, STAFF, 2))[1]["text"]
    api.push_text(STAFF, "/show BIQ-1")
    assert "sophie.tremblay" in (await reply_to(api, STAFF, 3))[2]["text"]
    from store.models import AuditEntry
    with chatbot.store.session() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry))]
    assert actions.count("search") == 2 and "read" in actions


def test_link_codes_expire_are_single_use_and_rate_limited(db_url):
    from bot.chat_commands import ChatCommands
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    settings = make_settings(db_url, "dir:/tmp/biq-test-unused")
    store = Store(db_url)
    prepare_store(store, settings)
    cmds = ChatCommands(store, Pipeline(store, settings))
    user = 42

    def say(command: str, args: str = "") -> str:
        return cmds.handle(update_id=None, user_id=user, chat_id=user, command=command, args=args).text

    assert "code" in say("link", SOPHIE)
    with store.session() as s:  # the code has expired
        for row in s.scalars(select(LinkCode)):
            row.expires_at = utcnow() - timedelta(minutes=1)
    assert "Aucun code valide" in say("verify", "123456")
    say("link", SOPHIE)
    say("link", SOPHIE)
    assert "Trop de demandes" in say("link", SOPHIE)
    for _ in range(5):
        say("verify", "999999")
    assert "Aucun code valide" in say("verify", "999999")  # attempts exhausted
    store.dispose()


@pytest.mark.parametrize("text", ["", "/", "BIQ", "biq-", "BIQ-99999999999", "#", "x" * 5000, "\x00", "’"])
def test_command_arguments_never_crash(db_url, text):
    from bot.chat_commands import ChatCommands
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    settings = make_settings(db_url, "dir:/tmp/biq-test-unused")
    store = Store(db_url)
    prepare_store(store, settings)
    cmds = ChatCommands(store, Pipeline(store, settings))
    for command in ("show", "offer", "accept", "decline", "cancel", "complete", "unfilled", "comm", "search",
                    "link", "verify", "mine", "notifications", "nonsense"):
        answer = cmds.handle(update_id=None, user_id=STAFF, chat_id=STAFF, command=command, args=text)
        assert isinstance(answer.text, str)
    store.dispose()


async def test_webhook_mode_checks_the_secret_token(db_url, sink):
    import httpx

    from .conftest import free_port
    api = FakeBotApi().start()
    port = free_port()
    settings = make_settings(db_url, f"smtp://127.0.0.1:{sink.port}", telegram_token=api.token,
                             telegram_api_url=api.base_url, telegram_webhook_url="https://bot.example.org/telegram",
                             telegram_webhook_listen=f"127.0.0.1:{port}", telegram_webhook_secret="s3cret-token")
    try:
        async with running_bot(settings):
            hook = next(c for c in api.sent if c["method"] == "setWebhook")
            assert hook["url"] == "https://bot.example.org/telegram" and hook["secret_token"] == "s3cret-token"
            update = {"update_id": 77, "message": {"message_id": 1, "date": 1795190400, "text": "/help",
                                                   "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                                                   "from": {"id": STAFF, "is_bot": False, "first_name": "H"},
                                                   "chat": {"id": STAFF, "type": "private"}}}
            async with httpx.AsyncClient() as client:
                forged = await client.post(f"http://127.0.0.1:{port}/telegram", json=update)
                assert forged.status_code == 403
                ok = await client.post(f"http://127.0.0.1:{port}/telegram", json=update,
                                       headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})
                assert ok.status_code == 200
            assert "/offer" in (await reply_to(api, STAFF))[0]["text"]
    finally:
        api.stop()


async def test_chat_replies_go_out_to_several_chats_at_once_each_in_order(db_url, tmp_path):
    """Each Bot API call waits for a round trip to Telegram: a burst's chat replies go to
    `outbound_connections` chats at once, and each chat gets its replies in the order queued."""
    api = FakeBotApi().start()
    api.delay = 0.2
    settings = make_settings(db_url, f"dir:{tmp_path}", telegram_token=api.token, telegram_api_url=api.base_url,
                             outbound_connections=3)
    store = Store(db_url)
    store.migrate()
    app = Application.builder().token(api.token).base_url(api.base_url).build()
    await app.initialize()
    try:
        chats = [800000001, 800000002, 800000003, 800000004]
        now = utcnow()
        with store.session() as s:
            s.add_all(Outbox(dedupe_key=f"c{chat}-{i}", channel="telegram", kind="submitted", to_addr=str(chat),
                             message=json.dumps({"text": f"reply {i}"}).encode(), next_attempt_at=now, created_at=now)
                      for i in range(3) for chat in chats)
        sender = Sender(store, settings)
        sender.telegram = app.bot
        assert await sender.deliver_due(50) == 12
        for chat in chats:
            assert [m["text"] for m in api.messages_to(chat)] == ["reply 0", "reply 1", "reply 2"]
        assert api.most_in_flight == 3  # three chats at once, never more
    finally:
        await app.shutdown()
        store.dispose()
        api.stop()
