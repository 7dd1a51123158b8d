"""The transactional outbox: replies are queued in the same transaction as the change they
announce, then delivered by `Sender` to an SMTP relay or a folder of .eml files.

Delivery claims a row by pushing its `next_attempt_at` forward (a lease) in a short transaction,
so several instances can share the outbox and a crashed sender's rows come back by themselves.
A 5xx answer is permanent (recorded, never retried); anything else is retried with backoff.
A pass's replies to a relay share a few connections kept open, and its chat replies go to a few
chats at once: under a burst each reply would otherwise wait for its own handshakes and round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import aiosmtplib
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from store.db import Store, utcnow
from store.models import Outbox

from .background import background_executor
from .config import Settings
from .eml_folder import write_files
from .metrics import FAILURES, REPLIES_OUT
from .replies import OutgoingEmail, build_email

log = logging.getLogger("biq.outbox")
GATHER = 0.05  # seconds the sender waits after a wake-up for more replies to deliver together


INSERT_OUTBOX = insert(Outbox.__table__)
REPLIES_SINCE = (select(Outbox.to_addr, func.count(Outbox.id))
                 .where(Outbox.to_addr.in_(bindparam("to", expanding=True)), Outbox.created_at >= bindparam("since"))
                 .group_by(Outbox.to_addr))


def replies_last_hour(session: Session, to: str) -> int:
    """Replies queued to *to* in the last hour; counted once per transaction, then kept up to
    date in the session as replies are queued (a batch answers the same sender many times)."""
    return count_replies_last_hour(session, [to])[to.strip().lower()]


def count_replies_last_hour(session: Session, addresses: Iterable[str]) -> dict[str, int]:
    """`replies_last_hour` for several addresses in one query (those not counted yet in this
    transaction); returns the session's counts."""
    counts = session.info.setdefault("replies_last_hour", {})
    todo = sorted({a.strip().lower() for a in addresses} - counts.keys())
    if todo:
        since = utcnow() - timedelta(hours=1)
        found = dict(session.connection().execute(REPLIES_SINCE, {"to": todo, "since": since}).all())
        counts.update((a, found.get(a, 0)) for a in todo)
    return counts


def queue_email(session: Session, settings: Settings, out: OutgoingEmail, *, kind: str, dedupe: str,
                request_id: int | None = None, inbound_id: int | None = None) -> int | None:
    """Queue one reply, unless the sender's hourly cap is reached; returns the outbox id.

    *dedupe* is unique in the table: the same reply cannot be queued twice even by a bug, since
    the transaction that would do it fails as a whole."""
    to = out.to.strip().lower()
    if replies_last_hour(session, to) >= settings.replies_per_sender_per_hour:
        log.warning("reply cap reached for a sender (%d per hour): %s reply not sent (inbound %s)",
                    settings.replies_per_sender_per_hour, kind, inbound_id)
        return None
    now = utcnow()
    raw, _mid = build_email(out, from_addr=settings.bot_address, from_name=settings.bot_name,
                            domain=settings.bot_domain, now=now)
    outbox_id = insert_outbox(session, dedupe_key=dedupe[:300], channel="email", kind=kind, to_addr=to,
                              subject=out.subject[:998], message=raw, request_id=request_id, inbound_id=inbound_id,
                              next_attempt_at=now, created_at=now)
    session.info["replies_last_hour"][to] += 1
    return outbox_id


def insert_outbox(session: Session, **values: object) -> int:
    """One outbox row, written straight away in the caller's transaction (no unit of work: a
    reply is never changed after it is queued)."""
    result = session.connection().execute(INSERT_OUTBOX, dict(state="pending", attempts=0, last_error="", **values))
    return result.inserted_primary_key[0]


_OUT = Outbox.__table__
DUE = (select(_OUT.c.id, _OUT.c.channel, _OUT.c.kind, _OUT.c.to_addr, _OUT.c.message, _OUT.c.attempts)
       .where(_OUT.c.state == "pending", _OUT.c.next_attempt_at <= bindparam("now"))
       .order_by(_OUT.c.id).limit(bindparam("n")).with_for_update(skip_locked=True))
SENT = update(_OUT).where(_OUT.c.id == bindparam("b_id")).values(state="sent", sent_at=bindparam("at"), last_error="")
LEASE = (update(_OUT).where(_OUT.c.id.in_(bindparam("ids", expanding=True)))
         .values(attempts=_OUT.c.attempts + 1, next_attempt_at=bindparam("until")))


class PermanentFailure(Exception):
    """The target refused the message for good (5xx): retrying would not help."""


@dataclass
class SmtpTarget:
    host: str
    port: int
    tls: bool
    starttls: bool | None
    user: str
    password: str


def parse_target(settings: Settings) -> Path | SmtpTarget:
    spec = settings.outbound
    if spec.startswith("dir:"):
        return Path(spec[4:])
    u = urlparse(spec)
    q = parse_qs(u.query)
    starttls = None
    if "starttls" in q:
        starttls = q["starttls"][0].lower() in ("1", "true", "yes")
    return SmtpTarget(host=u.hostname or "127.0.0.1", port=u.port or (465 if u.scheme == "smtps" else 25),
                      tls=u.scheme == "smtps", starttls=starttls,
                      user=unquote(u.username or "") or settings.smtp_user,
                      password=unquote(u.password or "") or settings.smtp_password)


class Sender:
    """Delivers due outbox rows; `deliver_due` is one pass, `run` loops until stopped."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.target = parse_target(settings)
        self.wake = asyncio.Event()
        self.telegram = None  # a telegram.Bot when the chat channel is on
        self._tls: ssl.SSLContext | None = None
        self._unrecorded: list[tuple[int, str | None, bool, int]] = []
        self._recording = asyncio.Lock()
        self.thread = background_executor("biq-sender")  # claims, files and records: see bot.background

    async def _in_thread(self, fn, *args):  # noqa: ANN001, ANN202
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn, *args)

    def _claim(self, limit: int) -> list:
        """Due rows, each leased to this sender (pushed `lease` seconds ahead) in one statement."""
        now = utcnow()
        with self.store.write_connection() as c:
            rows = c.execute(DUE, {"now": now, "n": limit}).all()
            if rows:
                c.execute(LEASE, {"ids": [r.id for r in rows],
                                  "until": now + timedelta(seconds=self.settings.outbound_lease_seconds)})
            return rows

    def _finish(self, results: list[tuple[int, str | None, bool, int]]) -> None:
        """Record (outbox id, error or None, permanent, attempts) for several rows at once."""
        now = utcnow()
        with self.store.write_connection() as c:
            sent = [{"b_id": row_id, "at": now} for row_id, error, _, _ in results if error is None]
            if sent:
                c.execute(SENT, sent)
            for row_id, error, permanent, attempts in results:
                if error is None:
                    continue
                if permanent or attempts >= self.settings.outbound_max_attempts:
                    values = dict(state="failed", last_error=error[:2000])
                else:
                    delay = min(self.settings.outbound_backoff_seconds * 2 ** (attempts - 1),
                                self.settings.outbound_backoff_max_seconds)
                    values = dict(next_attempt_at=now + timedelta(seconds=delay), last_error=error[:2000])
                c.execute(update(_OUT).where(_OUT.c.id == row_id).values(**values))

    async def deliver_due(self, limit: int = 50) -> int:
        """One pass over what is due. Files are written together and recorded in one transaction
        (a file already written is never written twice); each network delivery is recorded as
        soon as it is done, so a crash can repeat at most the ones in flight."""
        rows = await self._in_thread(self._claim, limit)
        emails = [r for r in rows if r.channel == "email"]
        results: list[tuple[object, str | None, bool]] = []
        if emails and isinstance(self.target, Path):
            written = await self._in_thread(self._write_files, emails)
            results += [(r, err, False) for r, err in zip(emails, written, strict=True)]
            await self._in_thread(self._finish, [(r.id, err, False, r.attempts + 1) for r, err, _ in results])
        elif emails:
            results += await self._deliver_to_relay(emails)
        chats = [r for r in rows if r.channel != "email"]
        if chats:
            results += await self._deliver_to_chats(chats)
        for row, error, permanent in results:
            if error:
                FAILURES.labels("delivery_permanent" if permanent else "delivery_retry").inc()
                level = logging.ERROR if permanent else logging.WARNING
                log.log(level, "outbox %d (%s): %s%s", row.id, row.kind,
                        "permanent failure: " if permanent else "will retry: ", error[:200])
            else:
                REPLIES_OUT.labels(row.channel).inc()
                log.info("outbox %d (%s) delivered", row.id, row.kind)
        return sum(1 for _, error, _ in results if error is None)

    async def _record(self, row, error: str | None, permanent: bool) -> None:  # noqa: ANN001 - an outbox row
        """Record one delivery, together with those that ended while the last record was being
        written (a group commit): each connection waits for one commit, not for one per reply."""
        self._unrecorded.append((row.id, error, permanent, row.attempts + 1))
        async with self._recording:
            batch, self._unrecorded = self._unrecorded, []
            if batch:  # else a connection that held the lock before us recorded ours too
                await self._in_thread(self._finish, batch)

    async def _deliver_to_relay(self, rows: list) -> list[tuple[object, str | None, bool]]:
        """Hand *rows* to the relay over up to `outbound_connections` connections at once, each
        kept open for the next reply it takes: a connection per reply paid a TCP, SMTP (and TLS)
        handshake each time. A connection that cannot be opened ends its share of the pass: the
        relay is down, unreachable or refuses us (a login refused), and the replies no connection
        could take are recorded as such, to be retried with the others."""
        tls = await self._tls_context()
        todo = deque(rows)
        results: list[tuple[object, str | None, bool]] = []

        async def connection() -> None:
            client: aiosmtplib.SMTP | None = None
            try:
                while todo:
                    row = todo.popleft()
                    error, permanent = None, False
                    try:
                        if client is None or not client.is_connected:
                            client = self._relay_client(tls)
                            try:
                                await client.connect()
                            except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
                                client, error = None, f"no connection to the relay: {type(exc).__name__}: {exc}"
                                await self._record(row, error, False)
                                results.append((row, error, False))
                                return
                        await self._sendmail(client, row)
                    except PermanentFailure as exc:
                        error, permanent = str(exc), True
                    except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    await self._record(row, error, permanent)
                    results.append((row, error, permanent))
            finally:
                if client is not None and client.is_connected:
                    with contextlib.suppress(Exception):  # the replies are delivered; a failed QUIT changes nothing
                        await client.quit()

        async with asyncio.TaskGroup() as connections:  # one failing (the store is down) stops the others
            for _ in range(min(self.settings.outbound_connections, len(rows))):
                connections.create_task(connection())
        for row in todo:  # every connection gave up: the relay is down, unreachable or refuses us
            error = "no connection to the relay: not attempted in this pass"
            await self._record(row, error, False)
            results.append((row, error, False))
        return results

    async def _deliver_to_chats(self, rows: list) -> list[tuple[object, str | None, bool]]:
        """Chat replies: each chat's in the order they were queued (a status after the reply it
        follows), up to `outbound_connections` chats at once, since each Bot API call waits for a
        round trip to Telegram."""
        by_chat: dict[str, list] = {}
        for row in rows:
            by_chat.setdefault(row.to_addr, []).append(row)
        results: list[tuple[object, str | None, bool]] = []
        turns = asyncio.Semaphore(self.settings.outbound_connections)

        async def chat(replies: list) -> None:
            async with turns:
                for row in replies:
                    error, permanent = None, False
                    try:
                        await self._send_chat(row)
                    except PermanentFailure as exc:
                        error, permanent = str(exc), True
                    except OSError as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    await self._record(row, error, permanent)
                    results.append((row, error, permanent))

        async with asyncio.TaskGroup() as chats:
            for replies in by_chat.values():
                chats.create_task(chat(replies))
        return results

    async def _tls_context(self) -> ssl.SSLContext:
        """One TLS context for the sender's life: loading the CA bundle takes ≈ 50 ms of CPU, and
        building one per reply (in the event loop) capped a relay at ≈ 16 replies a second."""
        if self._tls is None:
            self._tls = await self._in_thread(ssl.create_default_context)
        return self._tls

    def _relay_client(self, tls: ssl.SSLContext) -> aiosmtplib.SMTP:
        t = self.target
        assert isinstance(t, SmtpTarget)
        return aiosmtplib.SMTP(hostname=t.host, port=t.port, use_tls=t.tls, start_tls=t.starttls,
                               username=t.user or None, password=t.password or None, timeout=30,
                               tls_context=tls, local_hostname=self.settings.bot_domain)

    async def _sendmail(self, client: aiosmtplib.SMTP, row) -> None:  # noqa: ANN001 - an outbox row
        """One reply on an open connection, from its VERP return path; 5xx is permanent."""
        try:
            await client.sendmail(self.settings.verp_address(row.id), [row.to_addr], row.message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if codes and all(c >= 500 for c in codes):
                raise PermanentFailure(f"recipient refused: {codes[0]}") from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentFailure(f"relay answered {exc.code} {exc.message[:200]}") from exc
            if exc.code == 421:  # the relay is closing this connection
                client.close()
            raise

    async def _send_chat(self, row: Outbox) -> None:
        from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

        from .telegram_bot import keyboard_markup
        if self.telegram is None:
            raise OSError("the Telegram channel is off (BIQ_TELEGRAM_TOKEN not set)")
        payload = json.loads(row.message)
        try:
            await self.telegram.send_message(int(row.to_addr), payload["text"],
                                             reply_markup=keyboard_markup(payload.get("keyboard") or []))
        except (Forbidden, BadRequest) as exc:  # blocked the bot, chat gone, bad data: retrying won't help
            raise PermanentFailure(f"Telegram refused: {type(exc).__name__}") from exc
        except (RetryAfter, NetworkError) as exc:
            raise OSError(f"Telegram unreachable: {type(exc).__name__}") from exc
        except TelegramError as exc:
            raise OSError(f"Telegram error: {type(exc).__name__}") from exc

    def _write_files(self, rows: list) -> list[str | None]:
        """Write each row's file; None for success, else the error (the others still go)."""
        assert isinstance(self.target, Path)
        return write_files(self.target, [(f"{row.id:08d}-{row.kind}.eml", row.message) for row in rows])

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                n = await self.deliver_due()
            except Exception:  # noqa: BLE001 - the store may be down: log, wait, try again
                log.exception("outbox pass failed; retrying shortly")
                n = 0
            if n:
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.poll_interval)
            except TimeoutError:
                continue
            # woken by new replies: let a few more batches' replies join this pass (one claim,
            # one record, instead of a pass for every batch); a reply waits at most GATHER more
            await asyncio.sleep(GATHER)
