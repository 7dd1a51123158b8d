"""The pipeline: one stored inbound message → parse → rules → store → outbox, in one transaction.

If anything fails half-way the transaction rolls back and the message stays `new`, so a crash can
neither lose a message nor send a reply twice. A message that fails three times is quarantined
with a readable reason (never its content) for staff to look at.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from parsers.directory import Directory
from parsers.mime import MailMessage
from parsers.request import ParsedRequest, parse_email
from store.db import Store, utcnow
from store.directory_sync import directory_from_store
from store.models import InboundMessage, Installation, Outbox, Request, Requester

from . import rules, workflow
from .config import Settings
from .outbox import queue_email
from .replies import OutgoingEmail, format_date, make_environment, render

log = logging.getLogger("biq.pipeline")
MAX_ATTEMPTS = 3
OUR_MSGID = re.compile(r"<biq-0*(\d{1,9})\.[0-9a-f]+@", re.I)
SUBJECT_TAG = re.compile(r"\[\s*BIQ-0*(\d{1,9})\s*\]", re.I)
ACTIVE = ("incomplete", "submitted", "offered", "confirmed")


@dataclass
class Outcome:
    state: str  # done, ignored, quarantined
    summary: str  # safe to log: references, statuses, reasons; never content


class Pipeline:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.env = make_environment()
        self._directory: Directory | None = None

    # ---- directory ------------------------------------------------------------------------------
    def directory(self, session: Session) -> Directory:
        if self._directory is None:
            self._directory = directory_from_store(session)
        return self._directory

    def reload_directory(self) -> None:
        self._directory = None

    # ---- driving ----------------------------------------------------------------------------------
    def process_pending(self, limit: int = 100) -> int:
        """Process up to *limit* waiting messages; returns how many were handled."""
        handled = 0
        for _ in range(limit):
            if not self.process_next():
                break
            handled += 1
        return handled

    def process_next(self) -> bool:
        try:
            with self.store.session() as s:
                row = s.scalars(select(InboundMessage).where(InboundMessage.state == "new")
                                .order_by(InboundMessage.id).limit(1).with_for_update(skip_locked=True)).first()
                if row is None:
                    return False
                inbound_id = row.id
                outcome = self.process(s, row)
                row.state = outcome.state
                row.outcome = outcome.summary[:2000]
                row.processed_at = utcnow()
            log.info("inbound %d: %s (%s)", inbound_id, outcome.summary, outcome.state)
            return True
        except Exception as exc:  # noqa: BLE001 - one bad message must never block the others
            log.exception("inbound processing failed")
            self._count_failure(locals().get("inbound_id"), exc)
            return True

    def _count_failure(self, inbound_id: int | None, exc: Exception) -> None:
        if inbound_id is None:
            raise exc
        with self.store.session() as s:
            row = s.get(InboundMessage, inbound_id)
            if row is None:
                return
            row.attempts += 1
            if row.attempts >= MAX_ATTEMPTS:
                row.state = "quarantined"
                row.outcome = f"quarantined after {row.attempts} failures: {type(exc).__name__}"
                row.processed_at = utcnow()
                log.error("inbound %d quarantined: %s", inbound_id, type(exc).__name__)

    # ---- one message ------------------------------------------------------------------------------
    def process(self, s: Session, inbound: InboundMessage) -> Outcome:
        d = self.directory(s)
        parsed, mail = parse_email(d, inbound.raw)
        sender = mail.from_addr
        if mail.defects and not mail.text and not sender:
            return Outcome("quarantined", "unreadable message: " + "; ".join(mail.defects)[:300])
        if sender in self.settings.own_addresses or sender.split("@")[-1] == self.settings.bot_domain and \
                sender.startswith(self.settings.bot_address.split("@")[0]):
            return Outcome("ignored", "message from the bot itself: not answered")
        if mail.is_automatic:
            return Outcome("ignored", f"automatic message ({mail.automatic_reason}): not answered")
        if not sender or "@" not in sender:
            return Outcome("quarantined", "no usable sender address")
        requester = s.scalar(select(Requester).where(Requester.email == sender, Requester.active))
        if requester is None:
            return self._unknown_sender(s, inbound, mail, parsed)
        lang = parsed.language
        target = self._thread_request(s, mail, parsed, requester)
        if parsed.intent == "cancel":
            return self._cancel(s, inbound, mail, parsed, requester, target)
        if parsed.intent == "status":
            return self._status(s, inbound, mail, requester, lang)
        if target is not None and target.status == "incomplete" and parsed.intent in ("new_request", "modify"):
            return self._complete(s, inbound, mail, parsed, requester, target)
        if parsed.intent == "modify":
            if target is None:
                return self._reply_not_found(s, inbound, mail, parsed, "modify")
            return self._modify(s, inbound, mail, parsed, requester, target)
        if parsed.intent == "new_request":
            return self._new_request(s, inbound, mail, parsed, requester)
        return Outcome("done", f"not a request ({parsed.intent}): no reply")

    # ---- helpers ----------------------------------------------------------------------------------
    def _may_act(self, requester: Requester, req: Request) -> bool:
        """Rule 7: a requester acts on their own requests and those of their installations."""
        if requester.role == "staff" or req.requester_id == requester.id:
            return True
        mine = {i.id for i in requester.installations}
        if req.location_id is not None:
            return req.location_id in mine
        return bool(mine & {i.id for i in req.requester.installations})

    def _thread_request(self, s: Session, mail: MailMessage, parsed: ParsedRequest, requester: Requester) -> Request | None:
        """The request a reply is about: subject tag, then our Message-IDs, then a cited reference."""
        numbers: list[int] = []
        m = SUBJECT_TAG.search(mail.subject)
        if m:
            numbers.append(int(m.group(1)))
        for h in [mail.in_reply_to, *reversed(mail.references)]:
            m = OUR_MSGID.search(h or "")
            if m:
                numbers.append(int(m.group(1)))
        if parsed.ref:
            numbers.append(int(parsed.ref.split("-")[1]))
        for n in numbers:
            req = s.get(Request, n)
            if req is not None and self._may_act(requester, req):
                return req
        return None

    def _unknown_sender(self, s: Session, inbound: InboundMessage, mail: MailMessage, parsed: ParsedRequest) -> Outcome:
        since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        already = s.scalar(select(Outbox.id).where(Outbox.to_addr == mail.from_addr, Outbox.kind == "unknown_sender",
                                                   Outbox.created_at >= since))
        if already:
            return Outcome("done", "unknown sender, access reply already sent today: no request")
        coordination = s.scalar(select(Requester.email).where(Requester.role == "staff", Requester.active)) \
            or self.settings.bot_address
        self._send(s, inbound, mail, "unknown_sender", parsed.language, None, sender=mail.from_addr,
                   coordination=coordination)
        return Outcome("done", "unknown sender: access reply, no request")

    def _summary(self, s: Session, req: Request) -> dict:
        d = self.directory(s)
        inst = s.get(Installation, req.location_id) if req.location_id else None
        lang = req.language
        pref_name = None
        if req.preferred_interpreter_id and req.preferred_interpreter_id in d.interpreters:
            pref_name = d.interpreters[req.preferred_interpreter_id].name
        elif req.preferred_interpreter_name:
            pref_name = req.preferred_interpreter_name
        dup = s.get(Request, req.duplicate_of) if req.duplicate_of else None
        return dict(
            ref=req.ref, status=req.status, date=req.date, start_time=req.start_time, duration=req.duration_minutes,
            language_name=d.language_name(req.target_language, lang), location_name=inst.name if inst else "",
            mode=req.mode, interpreter_type=req.interpreter_type, preferred_name=pref_name,
            preferred_note=req.preferred_interpreter_name if not req.preferred_interpreter_id else None,
            has_user_phone=bool(req.user_phone), duplicate_of=dup.ref if dup else None,
        )

    def _send(self, s: Session, inbound: InboundMessage, mail: MailMessage, kind: str, lang: str,
              req: Request | None, **ctx: object) -> None:
        rendered = render(self.env, kind, lang, bot_name=self.settings.bot_name, **ctx)
        out = OutgoingEmail(to=mail.from_addr, subject=rendered.subject, text=rendered.text, html=rendered.html,
                            in_reply_to=mail.message_id, references=mail.references,
                            ref=req.ref if req is not None else None, lang=lang)
        queue_email(s, self.settings, out, kind=kind, dedupe=f"in{inbound.id}:{kind}:{req.id if req else 0}",
                    request_id=req.id if req else None, inbound_id=inbound.id)

    def _apply(self, req: Request, parsed: ParsedRequest, d: Directory, appt_index: int = 0) -> list[str]:
        """Copy what the message states onto the request; returns the names of changed fields."""
        changed: list[str] = []

        def put(field: str, value: object) -> None:
            if value is not None and getattr(req, field) != value:
                setattr(req, field, value)
                changed.append(field)

        if parsed.appointments:
            a = parsed.appointments[min(appt_index, len(parsed.appointments) - 1)]
            put("date", a.date)
            put("start_time", a.start_time)
            put("duration_minutes", a.duration_minutes)
        put("target_language", parsed.target_language)
        put("source_language", parsed.source_language)
        put("location_id", parsed.location)
        put("mode", parsed.mode)
        put("address", parsed.address)
        put("interpreter_type", parsed.interpreter_type)
        if parsed.preferred_interpreter:
            if parsed.preferred_interpreter in d.interpreters:
                put("preferred_interpreter_id", parsed.preferred_interpreter)
            else:  # rule 4: not on the roster, kept as a note to the bank
                put("preferred_interpreter_name", parsed.preferred_interpreter[:200])
                note = f"Interprète souhaité (hors banque) : {parsed.preferred_interpreter[:200]}"
                if note not in (req.notes_to_coordinator or ""):
                    req.notes_to_coordinator = ((req.notes_to_coordinator or "") + "\n" + note).strip()
        put("notify_user", parsed.notify_user)
        put("user_phone", parsed.user_phone)
        put("reason", parsed.reason)
        put("message_to_interpreter", parsed.message_to_interpreter)
        if parsed.notes_to_coordinator and parsed.notes_to_coordinator not in (req.notes_to_coordinator or ""):
            req.notes_to_coordinator = ((req.notes_to_coordinator or "") + "\n" + parsed.notes_to_coordinator).strip()
            changed.append("notes_to_coordinator")
        return changed

    def _check(self, req: Request, parsed: ParsedRequest | None) -> list[str]:
        unclear = set(parsed.uncertain) if parsed else set()
        return rules.check(req, now=datetime.now(self.tz), tz=self.tz, unclear=unclear)

    def _flag_duplicate(self, s: Session, req: Request) -> None:
        """Rule 9: same requester, languages and start: flagged, never merged."""
        if req.date is None or req.start_time is None:
            return
        other = s.scalar(select(Request.id).where(
            Request.id != req.id, Request.requester_id == req.requester_id, Request.date == req.date,
            Request.start_time == req.start_time, Request.target_language == req.target_language,
            Request.status.in_(ACTIVE)).order_by(Request.id).limit(1))
        req.duplicate_of = other

    def _announce(self, s: Session, inbound: InboundMessage, mail: MailMessage, req: Request, problems: list[str]) -> None:
        kind = "incomplete" if problems else "submitted"
        self._send(s, inbound, mail, kind, req.language, req, r=self._summary(s, req), problems=problems)

    # ---- intents ----------------------------------------------------------------------------------
    def _new_request(self, s: Session, inbound: InboundMessage, mail: MailMessage, parsed: ParsedRequest,
                     requester: Requester) -> Outcome:
        d = self.directory(s)
        now = utcnow()
        created: list[Request] = []
        for i in range(max(1, len(parsed.appointments))):
            req = Request(requester_id=requester.id, status="incomplete", channel="email", language=parsed.language,
                          source_language="fr", inbound_id=inbound.id, created_at=now, updated_at=now, problems="[]")
            self._apply(req, parsed, d, i)
            s.add(req)
            s.flush()
            if created:
                req.series_id = created[0].id
            elif len(parsed.appointments) > 1:
                req.series_id = req.id
            self._flag_duplicate(s, req)
            problems = self._check(req, parsed)
            req.problems = json.dumps(problems)
            workflow.record(s, req, actor=requester.email, action="created", to_status="incomplete",
                            inbound_id=inbound.id)
            if not problems:
                workflow.transition(s, req, "submitted", actor=requester.email, reason="all rules met",
                                    inbound_id=inbound.id)
            self._announce(s, inbound, mail, req, problems)
            created.append(req)
        return Outcome("done", ", ".join(f"{r.ref} {r.status}" for r in created))

    def _complete(self, s: Session, inbound: InboundMessage, mail: MailMessage, parsed: ParsedRequest,
                  requester: Requester, req: Request) -> Outcome:
        changed = self._apply(req, parsed, self.directory(s))
        req.updated_at = utcnow()
        problems = self._check(req, parsed)
        req.problems = json.dumps(problems)
        workflow.record(s, req, actor=requester.email, action="completed_fields", reason=",".join(changed),
                        inbound_id=inbound.id)
        if not problems:
            workflow.transition(s, req, "submitted", actor=requester.email, reason="completed by reply",
                                inbound_id=inbound.id)
        self._announce(s, inbound, mail, req, problems)
        return Outcome("done", f"{req.ref} {req.status} (reply completed {len(changed)} fields)")

    def _modify(self, s: Session, inbound: InboundMessage, mail: MailMessage, parsed: ParsedRequest,
                requester: Requester, req: Request) -> Outcome:
        if req.status in workflow.FINAL:
            return self._reply_not_found(s, inbound, mail, parsed, "modify")
        changed = self._apply(req, parsed, self.directory(s))
        req.updated_at = utcnow()
        workflow.record(s, req, actor=requester.email, action="modified", reason=",".join(changed),
                        inbound_id=inbound.id)
        self._send(s, inbound, mail, "modified", parsed.language, req, r=self._summary(s, req))
        return Outcome("done", f"{req.ref} modified ({len(changed)} fields)")

    def _cancel(self, s: Session, inbound: InboundMessage, mail: MailMessage, parsed: ParsedRequest,
                requester: Requester, req: Request | None) -> Outcome:
        if req is None or req.status in workflow.FINAL:
            return self._reply_not_found(s, inbound, mail, parsed, "cancel")
        late = rules.is_late_cancellation(req, now=datetime.now(self.tz), tz=self.tz,
                                          hours=self.settings.late_cancellation_hours)
        req.late_cancellation = late
        workflow.transition(s, req, "cancelled", actor=requester.email,
                            reason="late cancellation" if late else "cancelled by requester", inbound_id=inbound.id)
        self._send(s, inbound, mail, "cancelled", parsed.language, req, r=self._summary(s, req), late=late,
                   late_hours=self.settings.late_cancellation_hours)
        return Outcome("done", f"{req.ref} cancelled{' (late)' if late else ''}")

    def _reply_not_found(self, s: Session, inbound: InboundMessage, mail: MailMessage, parsed: ParsedRequest,
                         action: str) -> Outcome:
        self._send(s, inbound, mail, "not_found", parsed.language, None, ref=parsed.ref, action=action)
        return Outcome("done", f"{action}: no request the sender may act on")

    def _status(self, s: Session, inbound: InboundMessage, mail: MailMessage, requester: Requester, lang: str) -> Outcome:
        today = datetime.now(self.tz).date()
        mine = [i.id for i in requester.installations]
        q = select(Request).where(Request.status.in_(ACTIVE), or_(Request.date.is_(None), Request.date >= today))
        if requester.role != "staff":
            q = q.where(or_(Request.requester_id == requester.id, Request.location_id.in_(mine)))
        reqs = list(s.scalars(q.order_by(Request.date, Request.start_time).limit(50)))
        d = self.directory(s)
        items = []
        for r in reqs:
            base = f"{r.ref} — {{d}}, {r.start_time.strftime('%H:%M') if r.start_time else '—'}"
            items.append({
                "line_fr": base.format(d=format_date(r.date, "fr") or "date à préciser")
                + f" — {d.language_name(r.target_language, 'fr')} — {r.status}",
                "line_en": base.format(d=format_date(r.date, "en") or "date to be given")
                + f" — {d.language_name(r.target_language, 'en')} — {r.status}",
            })
        self._send(s, inbound, mail, "status_list", lang, None, requests=items)
        return Outcome("done", f"status list sent ({len(items)} requests)")
