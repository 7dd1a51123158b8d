"""SMTP intake (aiosmtpd): the message is committed to the store before `250` is answered.

If the store cannot take it the answer is `451` and the sending server retries later; nothing is
half-written because the message is stored in one transaction. Only the bot's own addresses are
accepted as recipients, and SIZE is enforced by aiosmtpd (`552` above the limit).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
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
    A message stored past `limit` messages that no worker has taken yet has its `250` wait (at
    most `max_delay`) until **that message** has been processed. Each sender then has one
    message in the pipeline at a time and goes at the pace replies are made, so the time from a
    message to its reply stays short (K senders, K messages in flight). Nothing is refused or
    lost: the message is already stored.

    Why its own message: releasing the senders when the *count* fell back under the limit let
    them all go at once, with a second message each while the first was still being processed
    (p99 107-115 ms at K = 8 against 79-87 ms; the same throughput, measured in pairs).

    The workers report the ids they processed (`processed`). A report can come before the
    session waits (a worker may take the message as soon as it is committed), so ids nobody
    waits for are kept a while. With several instances on PostgreSQL, another instance's
    workers process about half of the messages: every instance hears of them through
    PostgreSQL's NOTIFY (`store.pg_notify`). As a safety net (a notification missed while
    reconnecting), while senders are held the store is asked every `RECHECK`, once for all of
    them, which of their messages are processed (`done_among`), and every `RECOUNT` how many
    wait (`recount`, less what this process's workers hold), so that the count does not drift.
    """

    RECHECK = 0.1  # a look-up by primary key for the senders held (a safety net on PostgreSQL, see below)
    RECOUNT = 0.5  # the backlog count, which only keeps the count from drifting
    KEEP_EARLY = 4096

    def __init__(self, limit: int, max_delay: float,
                 recount: Callable[[], Awaitable[int]] | None = None,
                 done_among: Callable[[list[int]], Awaitable[list[int]]] | None = None) -> None:
        self.limit = limit
        self.max_delay = max_delay
        self.recount = recount
        self.done_among = done_among
        self.waiting = 0
        self.in_hand = 0
        self._held: dict[int, asyncio.Future[None]] = {}
        self._early: OrderedDict[int, bool] = OrderedDict()
        self._checking: asyncio.Future[None] | None = None
        self._checked_at = 0.0
        self._recounted_at = 0.0

    @property
    def behind(self) -> bool:
        return bool(self.limit) and self.waiting > self.limit

    def stored(self, n: int = 1) -> None:
        self.waiting += n

    def taken(self, n: int) -> None:
        """A worker took *n* messages (negative: it is done with them)."""
        self.in_hand = max(0, self.in_hand + n)
        if n > 0:
            self.waiting = max(0, self.waiting - n)

    def processed(self, ids: list[int]) -> None:
        """These messages are processed: let their senders go."""
        for i in ids:
            fut = self._held.pop(i, None)
            if fut is None:
                self._early[i] = True
                if len(self._early) > self.KEEP_EARLY:
                    self._early.popitem(last=False)
            elif not fut.done():
                fut.set_result(None)

    async def admit(self, inbound_id: int) -> None:
        """Return when the sender of *inbound_id* may have its `250`."""
        if not self.behind or self._early.pop(inbound_id, False):
            return
        loop = asyncio.get_running_loop()
        fut = self._held[inbound_id] = loop.create_future()
        deadline = loop.time() + self.max_delay
        try:
            while not fut.done():
                left = deadline - loop.time()
                if left <= 0:
                    return
                await asyncio.wait({fut}, timeout=min(self.RECHECK, left))
                if not fut.done() and not await self._ask_store():
                    return  # the store is busy or down: do not hold senders for it
        finally:
            self._held.pop(inbound_id, None)

    async def _ask_store(self) -> bool:
        if self.done_among is None and self.recount is None:
            return True
        loop = asyncio.get_running_loop()
        if self._checking is None or (self._checking.done() and loop.time() - self._checked_at >= self.RECHECK):
            self._checking = asyncio.ensure_future(self._check())  # one query for all the senders held
            self._checked_at = loop.time()
        try:
            await asyncio.shield(self._checking)
        except Exception:  # noqa: BLE001
            return False
        return True

    async def _check(self) -> None:
        if self.done_among is not None and self._held:
            done = await self.done_among(list(self._held))
            self.processed([i for i in done if i in self._held])
        loop = asyncio.get_running_loop()
        if self.recount is not None and loop.time() - self._recounted_at >= self.RECOUNT:
            self._recounted_at = loop.time()
            self.waiting = max(0, await self.recount() - self.in_hand)


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
            await self.flow.admit(inbound_id)
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
