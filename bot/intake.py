"""Durable intake: a received message is committed to the store before anyone says 'accepted'.

Shared by every mail channel (SMTP now, IMAP later). The dedupe key makes re-delivery harmless:
the same Message-ID from the same sender, or the same bytes, is stored once.
"""

from __future__ import annotations

import email.utils
import hashlib
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from store.db import Store, utcnow
from store.models import InboundMessage

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


def store_inbound(store: Store, raw: bytes, *, mail_from: str, rcpt_to: list[str], channel: str = "smtp",
                  dedupe_key: str | None = None) -> tuple[int, bool]:
    """Commit the raw message; returns (inbound id, True if it was already stored).

    The same bytes (give or take the trace headers each hop adds) are one message. Two different
    messages that share a Message-ID are both kept; the pipeline decides what the second one is.
    """
    sha = hashlib.sha256(raw).hexdigest() if dedupe_key else content_hash(raw)
    mid = "" if dedupe_key else _message_id(raw)
    key = dedupe_key or f"sha:{sha}"
    mid_key = f"{mid}|{_from(raw)}"[:800] if mid else ""
    try:
        with store.session() as s:
            row = InboundMessage(channel=channel, dedupe_key=key[:600], message_id=mid[:500], mid_key=mid_key,
                                 sha256=sha, raw=raw,
                                 mail_from=mail_from[:500], rcpt_to=",".join(rcpt_to)[:5000],
                                 received_at=utcnow(), state="new")
            s.add(row)
            s.flush()
            return row.id, False
    except IntegrityError:
        with store.session() as s:  # a concurrent delivery of the same message won the race
            existing = s.scalar(select(InboundMessage.id).where(InboundMessage.dedupe_key == key))
            if existing is None:
                raise
            return existing, True
