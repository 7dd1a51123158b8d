"""SMTP intake (aiosmtpd): the message is committed to the store before `250` is answered.

If the store cannot take it the answer is `451` and the sending server retries later; nothing is
half-written because the message is stored in one transaction. Only the bot's own addresses are
accepted as recipients, and SIZE is enforced by aiosmtpd (`552` above the limit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import SMTP, Envelope, Session

from store.db import Store

from .config import Settings
from .intake import store_inbound
from .metrics import FAILURES, MESSAGES_IN

log = logging.getLogger("biq.smtp")


class IntakeHandler:
    def __init__(self, store: Store, settings: Settings, on_stored: Callable[[], None] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.on_stored = on_stored or (lambda: None)
        # one writer thread: SQLite serialises writes anyway, and the event loop never blocks on them
        self.writer = ThreadPoolExecutor(max_workers=1 if store.engine.dialect.name == "sqlite" else 4,
                                         thread_name_prefix="biq-intake")

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not self.settings.accepts(address):
            return "550 5.1.1 Unknown recipient: this server only accepts mail for the interpreter bank"
        if len(envelope.rcpt_tos) >= 20:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            inbound_id, duplicate = await loop.run_in_executor(
                self.writer, lambda: store_inbound(self.store, raw, mail_from=envelope.mail_from or "",
                                                   rcpt_to=list(envelope.rcpt_tos)))
        except Exception as exc:  # noqa: BLE001 - any store failure must become a 451, never a lost message
            log.error("could not store an incoming message (%s): answered 451", type(exc).__name__)
            FAILURES.labels("intake").inc()
            return "451 4.3.0 Temporary failure storing the message, please retry later"
        if duplicate:
            log.info("inbound %d received again: already stored, nothing to do", inbound_id)
        else:
            log.info("inbound %d stored (%d bytes)", inbound_id, len(raw))
            MESSAGES_IN.labels("smtp").inc()
            self.on_stored()
        return f"250 2.0.0 Message accepted for delivery <inbound {inbound_id}>"


def make_smtp_server(handler: IntakeHandler, settings: Settings) -> Callable[[], SMTP]:
    def factory() -> SMTP:
        return SMTP(handler, data_size_limit=settings.max_message_bytes, enable_SMTPUTF8=True,
                    decode_data=False, hostname=settings.bot_domain, timeout=settings.smtp_timeout,
                    ident="biq-bot")
    return factory
