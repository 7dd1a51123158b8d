"""The transactional outbox: replies are queued in the same transaction as the change they
announce, then delivered by `Sender` to an SMTP relay or a folder of .eml files.

Delivery claims a row by pushing its `next_attempt_at` forward (a lease) in a short transaction,
so several instances can share the outbox and a crashed sender's rows come back by themselves.
A 5xx answer is permanent (recorded, never retried); anything else is retried with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import aiosmtplib
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from store.db import Store, utcnow
from store.models import Outbox

from .config import Settings
from .metrics import FAILURES, REPLIES_OUT
from .replies import OutgoingEmail, build_email

log = logging.getLogger("biq.outbox")


def replies_last_hour(session: Session, to: str) -> int:
    since = utcnow() - timedelta(hours=1)
    return session.scalar(select(func.count(Outbox.id)).where(Outbox.to_addr == to, Outbox.created_at >= since)) or 0


def queue_email(session: Session, settings: Settings, out: OutgoingEmail, *, kind: str, dedupe: str,
                request_id: int | None = None, inbound_id: int | None = None) -> Outbox | None:
    """Queue one reply, unless the sender's hourly cap is reached.

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
    row = Outbox(dedupe_key=dedupe[:300], channel="email", kind=kind, to_addr=to, subject=out.subject[:998],
                 message=raw, request_id=request_id, inbound_id=inbound_id, state="pending",
                 next_attempt_at=now, created_at=now)
    session.add(row)
    session.flush()
    return row


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

    def _claim(self, limit: int) -> list[Outbox]:
        now = utcnow()
        with self.store.session() as s:
            q = (select(Outbox).where(Outbox.state == "pending", Outbox.next_attempt_at <= now)
                 .order_by(Outbox.id).limit(limit).with_for_update(skip_locked=True))
            rows = list(s.scalars(q))
            lease = timedelta(seconds=self.settings.outbound_lease_seconds)
            for r in rows:
                r.attempts += 1
                r.next_attempt_at = now + lease
            return rows

    def _finish(self, row_id: int, error: str | None, permanent: bool, attempts: int) -> None:
        with self.store.session() as s:
            values: dict = {}
            if error is None:
                values = dict(state="sent", sent_at=utcnow(), last_error="")
            elif permanent or attempts >= self.settings.outbound_max_attempts:
                values = dict(state="failed", last_error=error[:2000])
            else:
                delay = min(self.settings.outbound_backoff_seconds * 2 ** (attempts - 1),
                            self.settings.outbound_backoff_max_seconds)
                values = dict(next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=error[:2000])
            s.execute(update(Outbox).where(Outbox.id == row_id).values(**values))

    async def deliver_due(self, limit: int = 50) -> int:
        rows = await asyncio.to_thread(self._claim, limit)
        sent = 0
        for row in rows:
            error, permanent = None, False
            try:
                await self._send(row)
                sent += 1
            except PermanentFailure as exc:
                error, permanent = str(exc), True
            except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self._finish, row.id, error, permanent, row.attempts)
            if error:
                FAILURES.labels("delivery_permanent" if permanent else "delivery_retry").inc()
                level = logging.ERROR if permanent else logging.WARNING
                log.log(level, "outbox %d (%s): %s%s", row.id, row.kind,
                        "permanent failure: " if permanent else "will retry: ", error[:200])
            else:
                REPLIES_OUT.labels(row.channel).inc()
                log.info("outbox %d (%s) delivered", row.id, row.kind)
        return sent

    async def _send(self, row: Outbox) -> None:
        if row.channel == "telegram":
            await self._send_chat(row)
            return
        if isinstance(self.target, Path):
            await asyncio.to_thread(self._write_file, row)
            return
        t = self.target
        try:
            await aiosmtplib.send(row.message, sender=self.settings.verp_address(row.id), recipients=[row.to_addr],
                                  hostname=t.host, port=t.port, use_tls=t.tls, start_tls=t.starttls,
                                  username=t.user or None, password=t.password or None, timeout=30,
                                  tls_context=ssl.create_default_context())
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if codes and all(c >= 500 for c in codes):
                raise PermanentFailure(f"recipient refused: {codes[0]}") from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentFailure(f"relay answered {exc.code} {exc.message[:200]}") from exc
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

    def _write_file(self, row: Outbox) -> None:
        folder = self.target
        assert isinstance(folder, Path)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{row.id:08d}-{row.kind}.eml"
        if final.exists():
            return  # written before a crash, not yet marked sent: sending again would duplicate it
        tmp = folder / f".{row.id:08d}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(row.message)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)

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
                pass
