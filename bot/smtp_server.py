"""SMTP intake (aiosmtpd): the message is committed to the store before `250` is answered.

If the store cannot take it the answer is `451` and the sending server retries later; nothing is
half-written because the message is stored in one transaction. Only the bot's own addresses are
accepted as recipients, and SIZE is enforced by aiosmtpd (`552` above the limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from store.db import Store

from .config import Settings
from .intake import GroupWriter, Received
from .metrics import FAILURES, MESSAGES_IN

log = logging.getLogger("biq.smtp")


class InFlow:
    """Slow the senders down while the pipeline is behind (Postfix's `in_flow_delay`).

    Messages are stored before anything else, so a burst always gets in; but if they arrive
    faster than they are processed the queue only grows, and so does every message's wait.
    Past `limit` stored messages that no worker has taken yet, the `250` after DATA waits (at
    most `max_delay`) until the pipeline catches up: senders then go at the pace replies are
    made, and the time from a message to its reply stays short. Nothing is refused or lost.

    A message stops waiting when a worker *takes* it, not when its reply is written: senders are
    let in while a batch is being processed, so the next batch is stored by the time the worker
    is done (counting until the end left the worker idle a third of the time). `in_hand` is what
    this process's workers hold. The count is kept from what this process stores and what its
    workers report; while it is over the limit it is checked against the store (`recount`, the
    messages not processed yet, less those in hand), since other instances' workers may be the
    ones processing this instance's messages.
    """

    RECHECK = 0.05

    def __init__(self, limit: int, max_delay: float,
                 recount: Callable[[], Awaitable[int]] | None = None) -> None:
        self.limit = limit
        self.max_delay = max_delay
        self.recount = recount
        self.waiting = 0
        self.in_hand = 0
        self._room = asyncio.Event()
        self._room.set()
        self._recounting: asyncio.Future[int] | None = None
        self._recounted_at = 0.0

    def stored(self, n: int = 1) -> None:
        self._set(self.waiting + n)

    def taken(self, n: int) -> None:
        """A worker took *n* messages (negative: it is done with them)."""
        self.in_hand = max(0, self.in_hand + n)
        if n > 0:
            self._set(self.waiting - n)

    def _set(self, waiting: int) -> None:
        self.waiting = max(0, waiting)
        if not self.limit or self.waiting <= self.limit:
            self._room.set()
        else:
            self._room.clear()

    async def admit(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay
        while not self._room.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), min(self.RECHECK, max(0.0, deadline - loop.time())))
            if not self._room.is_set() and self.recount is not None:
                if self._recounting is None or loop.time() - self._recounted_at >= self.RECHECK:
                    # one query per RECHECK for all the senders held, not one each
                    self._recounting = asyncio.ensure_future(self.recount())
                    self._recounted_at = loop.time()
                try:
                    self._set(await asyncio.shield(self._recounting) - self.in_hand)
                except Exception:  # noqa: BLE001 - the store is busy or down: do not hold senders for it
                    return


class IntakeHandler:
    def __init__(self, store: Store, settings: Settings, on_stored: Callable[[], None] | None = None,
                 flow: InFlow | None = None) -> None:
        self.store = store
        self.settings = settings
        self.on_stored = on_stored or (lambda: None)
        self.flow = flow or InFlow(0, 0)
        self.writer = GroupWriter(store)  # many sessions' messages per commit, off the event loop

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
        try:
            inbound_id, duplicate = await asyncio.wrap_future(
                self.writer.submit(Received(raw, envelope.mail_from or "", list(envelope.rcpt_tos))))
        except Exception as exc:  # noqa: BLE001 - any store failure must become a 451, never a lost message
            log.error("could not store an incoming message (%s): answered 451", type(exc).__name__)
            FAILURES.labels("intake").inc()
            return "451 4.3.0 Temporary failure storing the message, please retry later"
        if duplicate:
            log.info("inbound %d received again: already stored, nothing to do", inbound_id)
        else:
            log.info("inbound %d stored (%d bytes)", inbound_id, len(raw))
            MESSAGES_IN.labels("smtp").inc()
            self.flow.stored()
            self.on_stored()
            await self.flow.admit()
        return f"250 2.0.0 Message accepted for delivery <inbound {inbound_id}>"


class BotSMTP(SMTP):
    """aiosmtpd's server, with the addresses of MAIL and RCPT parsed once per distinct address.

    aiosmtpd parses each with the email package's header parser (and defines a class on every
    call): 0.1 ms per command, twice per message, for the same few addresses over and over. The
    result depends only on the argument and the local-part limit, so it is kept (bounded). An
    address the parser trips over is answered as malformed."""

    _parsed: dict[tuple[str, int], tuple[str | None, str | None]] = {}
    _PARSED_MAX = 1024

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        key = (arg, self.local_part_limit)
        found = self._parsed.get(key)
        if found is None:
            try:
                found = super()._getaddr(arg)
            except Exception:  # noqa: BLE001 - the email parser trips on some (e.g. '<a@[b>'): malformed
                found = (None, None)  # -> "553 malformed address", not "500 Error" and a traceback
            if len(self._parsed) >= self._PARSED_MAX:
                self._parsed.clear()
            self._parsed[key] = found
        return found


def make_smtp_server(handler: IntakeHandler, settings: Settings) -> Callable[[], SMTP]:
    def factory() -> SMTP:
        return BotSMTP(handler, data_size_limit=settings.max_message_bytes, enable_SMTPUTF8=True,
                    decode_data=False, hostname=settings.bot_domain, timeout=settings.smtp_timeout,
                    ident="biq-bot")
    return factory
