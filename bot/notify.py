"""Replies and status notifications, by email and in the chat, from the same templates.

Status notifications respect the requester's opt-out; replies that need the requester to act
(incomplete, not found, access, link codes) are always sent. Confirmations carry an .ics with
the time and place only: no patient detail ever goes into a calendar file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from sqlalchemy.orm import Session

from parsers.directory import Directory
from store.db import utcnow
from store.models import Outbox, Request, Requester, request_ref

from .config import Settings
from .outbox import insert_outbox, queue_email
from .replies import OutgoingEmail, make_environment, render, sample_context

# Sent even to requesters who turned notifications off: they must act on these.
ACTION_NEEDED = {"incomplete", "not_found", "unchanged", "unknown_sender", "link_code", "not_linked", "error"}


@dataclass
class Origin:
    """Where a message came from, so that its reply goes back the same way (and threads)."""

    channel: str  # email or telegram
    address: str  # email address or chat id
    message_id: str = ""
    references: list[str] = field(default_factory=list)


def queue_chat(session: Session, settings: Settings, chat_id: str, text: str, *, kind: str, dedupe: str,
               request_id: int | None = None, inbound_id: int | None = None, keyboard: list | None = None) -> int | None:
    """Queue a chat message in the same outbox as email (same transaction, same exactly-once rules);
    returns the outbox id. Nothing is queued while the chat channel is off: there would be no way
    to deliver it."""
    from sqlalchemy import select
    if not settings.telegram_token:
        return None
    if session.scalar(select(Outbox.id).where(Outbox.dedupe_key == dedupe)) is not None:
        return None
    now = utcnow()
    payload = {"text": text[:4000]}
    if keyboard:
        payload["keyboard"] = keyboard
    return insert_outbox(session, dedupe_key=dedupe[:300], channel="telegram", kind=kind, to_addr=str(chat_id),
                         subject="", message=json.dumps(payload, ensure_ascii=False).encode(), request_id=request_id,
                         inbound_id=inbound_id, next_attempt_at=now, created_at=now)


def ics_for(req: Request, place: str, settings: Settings) -> bytes:
    tz = ZoneInfo(settings.timezone)
    cal = Calendar()
    cal.add("prodid", "-//biq-bot//BI du RSSS//FR")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    ev = Event()
    start = datetime.combine(req.date, req.start_time, tz)
    ev.add("uid", f"{req.ref.lower()}@{settings.bot_domain}")
    ev.add("dtstamp", utcnow())
    ev.add("dtstart", start)
    ev.add("dtend", start + timedelta(minutes=req.duration_minutes or 60))
    ev.add("summary", f"Interprète / Interpreter — {req.ref}")
    if place:
        ev.add("location", place)
    cal.add_component(ev)
    if hasattr(cal, "add_missing_timezones"):
        cal.add_missing_timezones()  # a VTIMEZONE for America/Montreal, for clients that need one
    return cal.to_ical()


class Notifier:
    def __init__(self, settings: Settings, directory: callable) -> None:  # noqa: ANN001 - (Session) -> Directory
        self.settings = settings
        self.env = make_environment(settings.templates_dir or None)
        self.directory = directory

    def summary(self, s: Session, req: Request) -> dict:
        d: Directory = self.directory(s)
        inst = d.installations.get(req.location_id) if req.location_id else None
        lang = req.language
        pref_name = None
        if req.preferred_interpreter_id and req.preferred_interpreter_id in d.interpreters:
            pref_name = d.interpreters[req.preferred_interpreter_id].name
        elif req.preferred_interpreter_name:
            pref_name = req.preferred_interpreter_name
        assigned = d.interpreters.get(req.assigned_interpreter_id) if req.assigned_interpreter_id else None
        return dict(
            ref=req.ref, status=req.status, date=req.date, start_time=req.start_time, duration=req.duration_minutes,
            language_name=d.language_name(req.target_language, lang), location_name=inst.name if inst else "",
            mode=req.mode, interpreter_type=req.interpreter_type, preferred_name=pref_name,
            preferred_note=req.preferred_interpreter_name if not req.preferred_interpreter_id else None,
            has_user_phone=bool(req.user_phone), duplicate_of=request_ref(req.duplicate_of) if req.duplicate_of else None,
            interpreter_name=assigned.name if assigned else "", late=req.late_cancellation,
        )

    def warm_up(self, kinds: tuple[str, ...] = ("submitted", "incomplete")) -> None:
        """Compile the replies most messages get (and the macros they import) before the first
        message: compiling them took the first batch of a burst from 15 to 90 ms."""
        for kind in kinds:
            for lang in ("fr", "en"):
                render(self.env, kind, lang, bot_name=self.settings.bot_name, **sample_context(kind))

    # ---- one reply to where a message came from -----------------------------------------------------
    def reply(self, s: Session, origin: Origin, kind: str, lang: str, req: Request | None, *, dedupe: str,
              inbound_id: int | None = None, keyboard: list | None = None, **ctx: object) -> None:
        rendered = render(self.env, kind, lang, bot_name=self.settings.bot_name, **ctx)
        if origin.channel == "telegram":
            queue_chat(s, self.settings, origin.address, rendered.text, kind=kind, dedupe=dedupe,
                       request_id=req.id if req else None, inbound_id=inbound_id, keyboard=keyboard)
            return
        out = OutgoingEmail(to=origin.address, subject=rendered.subject, text=rendered.text, html=rendered.html,
                            in_reply_to=origin.message_id, references=origin.references,
                            ref=req.ref if req is not None else None, lang=lang)
        queue_email(s, self.settings, out, kind=kind, dedupe=dedupe, request_id=req.id if req else None,
                    inbound_id=inbound_id)

    # ---- a status change, to the requester wherever they are -------------------------------------------
    def status_changed(self, s: Session, req: Request, kind: str, *, event_key: str,
                       skip_channel: str | None = None, **ctx: object) -> int:
        """Notify the requester of *req*; returns how many messages were queued."""
        requester: Requester = req.requester
        if kind not in ACTION_NEEDED and not requester.notifications:
            return 0
        r = self.summary(s, req)
        rendered = render(self.env, kind, req.language, bot_name=self.settings.bot_name, r=r,
                          late_hours=self.settings.late_cancellation_hours, **ctx)
        queued = 0
        if skip_channel != "email" and not requester.undeliverable:
            attachments = []
            if kind == "confirmed" and req.date and req.start_time:
                attachments.append((f"{req.ref}.ics", "text/calendar", ics_for(req, r["location_name"], self.settings)))
            out = OutgoingEmail(to=requester.email, subject=rendered.subject, text=rendered.text, html=rendered.html,
                                ref=req.ref, lang=req.language, attachments=attachments)
            if queue_email(s, self.settings, out, kind=kind, dedupe=f"{event_key}:email", request_id=req.id):
                queued += 1
        if skip_channel != "telegram" and requester.telegram_chat_id:
            if queue_chat(s, self.settings, requester.telegram_chat_id, rendered.text, kind=kind,
                          dedupe=f"{event_key}:chat", request_id=req.id):
                queued += 1
        return queued
