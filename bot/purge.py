"""Retention (Law 25): past the retention period, raw messages and personal details are erased;
what remains is anonymous (dates, languages, installations, statuses, durations) for statistics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.db import utcnow
from store.models import AuditEntry, CallbackToken, InboundMessage, LinkCode, Outbox, Request, RequestEvent

DURATION = re.compile(r"^\s*(\d+)\s*(d|j|w|sem|m|mo|y|a|an|ans|days?|weeks?|months?|years?)\s*$", re.I)


def parse_duration(text: str) -> timedelta:
    """'730d', '104w', '24m', '2y' → a timedelta (months are 30 days, years 365)."""
    m = DURATION.match(text)
    if not m:
        raise ValueError(f"a duration looks like 730d, 104w, 24m or 2y, not {text!r}")
    n, unit = int(m.group(1)), m.group(2).lower()
    days = {"d": 1, "j": 1, "w": 7, "s": 7, "m": 30, "y": 365, "a": 365}[unit[0]]
    return timedelta(days=n * days)


@dataclass
class PurgeReport:
    raw_messages: int
    requests_anonymised: int
    outbox_messages: int
    codes_and_tokens: int

    def lines(self) -> list[str]:
        return [f"raw messages erased: {self.raw_messages}",
                f"requests anonymised (contact and health details erased): {self.requests_anonymised}",
                f"sent replies erased: {self.outbox_messages}",
                f"expired link codes and buttons deleted: {self.codes_and_tokens}"]


def purge(session: Session, older_than: timedelta, actor: str = "system") -> PurgeReport:
    cutoff = utcnow() - older_than
    raw = session.execute(update(InboundMessage).where(InboundMessage.received_at < cutoff, InboundMessage.raw != b"",
                                                       InboundMessage.state != "new")
                          .values(raw=b"", outcome="purged: " + InboundMessage.state)).rowcount
    old = select(Request.id).where(Request.updated_at < cutoff, or_(
        Request.user_phone.is_not(None), Request.reason.is_not(None), Request.message_to_interpreter.is_not(None),
        Request.notes_to_coordinator.is_not(None), Request.address.is_not(None), Request.room.is_not(None),
        Request.preferred_interpreter_name.is_not(None)))
    ids = list(session.scalars(old))
    if ids:
        session.execute(update(Request).where(Request.id.in_(ids)).values(
            user_phone=None, reason=None, message_to_interpreter=None, notes_to_coordinator=None, address=None,
            room=None, preferred_interpreter_name=None))
        session.execute(update(RequestEvent).where(RequestEvent.request_id.in_(ids)).values(reason=""))
    out = session.execute(update(Outbox).where(Outbox.created_at < cutoff, Outbox.state != "pending",
                                               Outbox.message != b"").values(message=b"", subject="")).rowcount
    codes = session.query(LinkCode).filter(LinkCode.expires_at < utcnow()).delete()
    codes += session.query(CallbackToken).filter(CallbackToken.expires_at < utcnow()).delete()
    report = PurgeReport(raw or 0, len(ids), out or 0, codes or 0)
    session.add(AuditEntry(at=utcnow(), actor=actor, action="purge", details="; ".join(report.lines())))
    return report
