"""Durable intake: a received message is committed to the store before anyone says 'accepted'.

Shared by every mail channel (SMTP now, IMAP later). The dedupe key makes re-delivery harmless:
the same Message-ID from the same sender, or the same bytes, is stored once.
"""

from __future__ import annotations

import email.utils
import hashlib
import queue
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from store.db import Store, utcnow
from store.models import InboundMessage

from .background import name_os_thread

TRACE_HEADERS = re.compile(rb"^(?:received|return-path|delivered-to|x-original-to|x-received)\s*:.*(?:\r?\n[ \t].*)*\r?\n",
                           re.I | re.M)


def content_hash(raw: bytes) -> str:
    """Hash of the message without the trace headers each hop adds (same message, same hash)."""
    head, sep, body = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw[:65536] else raw.partition(b"\n\n")
    head = TRACE_HEADERS.sub(b"", head + b"\n")
    return hashlib.sha256(head + sep + body).hexdigest()


def _message_id(raw: bytes) -> str:
    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    m = re.search(rb"^message-id\s*:\s*(<[^>\r\n]{1,400}>)", head, re.I | re.M)
    return m.group(1).decode("ascii", "replace").lower() if m else ""


def _from(raw: bytes) -> str:
    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    m = re.search(rb"^from\s*:(.*(?:\r?\n[ \t].*)*)", head, re.I | re.M)
    return email.utils.parseaddr(m.group(1).decode("utf-8", "replace"))[1].lower() if m else ""


@dataclass
class Received:
    """One message as a channel received it, ready to be stored."""

    raw: bytes
    mail_from: str
    rcpt_to: list[str]
    channel: str = "smtp"
    dedupe_key: str | None = None

    def row(self) -> dict:
        sha = hashlib.sha256(self.raw).hexdigest() if self.dedupe_key else content_hash(self.raw)
        mid = "" if self.dedupe_key else _message_id(self.raw)
        key = self.dedupe_key or f"sha:{sha}"
        return dict(channel=self.channel, dedupe_key=key[:600], message_id=mid[:500],
                    mid_key=f"{mid}|{_from(self.raw)}"[:800] if mid else "", sha256=sha, raw=self.raw,
                    mail_from=self.mail_from[:500], rcpt_to=",".join(self.rcpt_to)[:5000], received_at=utcnow(),
                    state="new", outcome="", attempts=0)


def _insert_new(dialect: str):  # noqa: ANN202 - a dialect's INSERT ... ON CONFLICT DO NOTHING RETURNING id
    table = InboundMessage.__table__
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(table.c.id)


INSERT_NEW = {name: _insert_new(name) for name in ("postgresql", "sqlite")}
EXISTING = select(InboundMessage.id).where(InboundMessage.dedupe_key == bindparam("key"))


def store_many(store: Store, messages: list[Received]) -> list[tuple[int, bool]]:
    """Commit several messages in one transaction; for each, (inbound id, True if already stored).

    The same bytes (give or take the trace headers each hop adds) are one message. Two different
    messages that share a Message-ID are both kept; the pipeline decides what the second one is.
    """
    results = []
    with store.write_connection() as conn:
        insert_new = INSERT_NEW[store.engine.dialect.name]
        for m in messages:
            row = m.row()
            new_id = conn.execute(insert_new, row).scalar()
            if new_id is not None:
                results.append((new_id, False))
            else:  # stored before, or by a concurrent delivery of the same message
                results.append((conn.execute(EXISTING, {"key": row["dedupe_key"]}).scalar_one(), True))
    return results


def store_inbound(store: Store, raw: bytes, *, mail_from: str, rcpt_to: list[str], channel: str = "smtp",
                  dedupe_key: str | None = None) -> tuple[int, bool]:
    """Commit one message; returns (inbound id, True if it was already stored)."""
    return store_many(store, [Received(raw, mail_from, rcpt_to, channel, dedupe_key)])[0]


class GroupWriter:
    """Stores what concurrent SMTP sessions receive, many messages per commit.

    One thread (SQLite has one writer anyway) takes everything waiting and commits it in one
    transaction, then answers each session; a burst of K sessions costs one commit, not K. If
    the batch fails, each message is retried alone so that one bad message only fails itself.
    """

    def __init__(self, store: Store, max_batch: int = 64) -> None:
        self.store = store
        self.max_batch = max_batch
        self.queue: queue.SimpleQueue[tuple[Received, Future] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="biq-intake", daemon=True)
        self.thread.start()

    def submit(self, message: Received) -> Future:
        future: Future = Future()
        self.queue.put((message, future))
        return future

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _run(self) -> None:
        name_os_thread("biq-intake")
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.queue.put(None)
                    break
                batch.append(more)
            self._write(batch)

    def _write(self, batch: list[tuple[Received, Future]]) -> None:
        try:
            results = store_many(self.store, [m for m, _ in batch])
        except Exception:  # noqa: BLE001 - find out which message cannot be stored
            for m, future in batch:
                try:
                    future.set_result(store_many(self.store, [m])[0])
                except Exception as exc:  # noqa: BLE001 - handed to the session, which answers 451
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
