"""The pipeline: one stored inbound message → parse → rules → store → outbox, in one transaction.

Email and chat messages take the same path: only reading the message (`parse_email` or
`parse_update`), finding the requester (address or linked chat) and the way back (`Origin`)
differ. If anything fails half-way the transaction rolls back and the message stays `new`, so a
crash can neither lose a message nor send a reply twice. A message that fails three times is
quarantined with a readable reason (never its content) for staff to look at.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from parsers.directory import Directory
from parsers.request import ParsedRequest, parse_email, parse_update
from store.db import Store, utcnow
from store.directory_sync import directory_from_store
from store.models import InboundMessage, Outbox, Request, Requester

from . import rules, workflow
from .config import Settings
from .metrics import FAILURES, LATENCY, PROCESSED
from .notify import Notifier, Origin
from .replies import format_date

log = logging.getLogger("biq.pipeline")
MAX_ATTEMPTS = 3
OUR_MSGID = re.compile(r"<biq-0*(\d{1,9})\.[0-9a-f]+@", re.I)
SUBJECT_TAG = re.compile(r"\[\s*BIQ-0*(\d{1,9})\s*\]", re.I)
ACTIVE = ("incomplete", "submitted", "offered", "confirmed")
ECHO = re.compile(r"—\s*biq-bot\s*—|-\s*biq-bot\s*-")


def authenticated(header: str, authserv_id: str) -> bool:
    """RFC 8601: the trusted server's own Authentication-Results says dmarc (or dkim) passed."""
    for value in header.split("\n") if header else []:
        serv = value.split(";", 1)[0].strip().lower()
        if serv == authserv_id.lower() and re.search(r"\b(?:dmarc|dkim)=pass\b", value, re.I):
            return True
    return False
NOTIFICATIONS_OFF = re.compile(r"\b(?:desactiver|arreter|stop|turn off|disable)\s+(?:les |the |my |mes )?notifications", re.I)
NOTIFICATIONS_ON = re.compile(r"\b(?:activer|reactiver|turn on|enable)\s+(?:les |the |my |mes )?notifications", re.I)


@dataclass
class Outcome:
    state: str  # done, ignored, quarantined
    summary: str  # safe to log: references, statuses, reasons; never content


@dataclass
class Incoming:
    """One message, whatever its channel, as the intent handlers see it."""

    inbound: InboundMessage
    origin: Origin
    parsed: ParsedRequest
    requester: Requester
    thread_numbers: list[int]

    @property
    def lang(self) -> str:
        return self.parsed.language

    def key(self, kind: str, req: Request | None = None) -> str:
        return f"in{self.inbound.id}:{kind}:{req.id if req else 0}"


class Pipeline:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self._directory: Directory | None = None
        self._requester_ids: dict[str, int] | None = None
        self.notifier = Notifier(settings, self.directory)

    # ---- directory ------------------------------------------------------------------------------
    def directory(self, session: Session) -> Directory:
        if self._directory is None:
            self._directory = directory_from_store(session)
        return self._directory

    def reload_directory(self) -> None:
        self._directory = None
        self._requester_ids = None

    def requester_by_email(self, s: Session, email: str) -> Requester | None:
        """Active requester by address; ids are cached, rows come from the session (identity map)."""
        if self._requester_ids is None:
            self._requester_ids = dict(s.execute(select(Requester.email, Requester.id).where(Requester.active)).all())
        rid = self._requester_ids.get(email)
        if rid is None:
            return None
        req = s.get(Requester, rid)
        return req if req is not None and req.active and req.email == email else None

    # ---- driving ----------------------------------------------------------------------------------
    def process_pending(self, limit: int = 100, batch: int = 25) -> int:
        """Process up to *limit* waiting messages; returns how many were handled.

        Messages are taken *batch* at a time in one transaction (far fewer commits and lock
        round-trips); if any message of a batch fails, the batch is rolled back and its messages
        are processed one by one, so a bad message only ever affects itself.
        """
        handled = 0
        while handled < limit:
            try:
                n = self._process_batch(min(batch, limit - handled))
            except Exception:  # noqa: BLE001 - isolate the culprit below
                log.warning("a batch failed; processing its messages one by one")
                n = 0
                for _ in range(min(batch, limit - handled)):
                    if not self.process_next():
                        break
                    n += 1
            if n == 0:
                break
            handled += n
        return handled

    def _process_batch(self, size: int) -> int:
        outcomes: list[tuple[int, Outcome]] = []
        with self.store.session() as s:
            rows = list(s.scalars(select(InboundMessage).where(InboundMessage.state == "new")
                                  .order_by(InboundMessage.id).limit(size).with_for_update(skip_locked=True)))
            for row in rows:
                outcome = self.process(s, row)
                row.state = outcome.state
                row.outcome = outcome.summary[:2000]
                row.processed_at = utcnow()
                s.flush()
                outcomes.append((row.id, outcome))
        now = utcnow()
        for (inbound_id, outcome), row in zip(outcomes, rows, strict=True):
            log.info("inbound %d (%s): %s", inbound_id, outcome.state, outcome.summary)
            PROCESSED.labels(outcome.state).inc()
            LATENCY.observe(max(0.0, (now - row.received_at).total_seconds()))
        return len(outcomes)

    def process_next(self) -> bool:
        inbound_id = None
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
            log.info("inbound %d (%s): %s", inbound_id, outcome.state, outcome.summary)
            return True
        except Exception as exc:  # noqa: BLE001 - one bad message must never block the others
            if inbound_id is None:
                raise
            log.exception("inbound %d: processing failed", inbound_id)
            self._count_failure(inbound_id, exc)
            return True

    def _count_failure(self, inbound_id: int, exc: Exception) -> None:
        with self.store.session() as s:
            row = s.get(InboundMessage, inbound_id)
            if row is None:
                return
            row.attempts += 1
            if row.attempts >= MAX_ATTEMPTS:
                row.state = "quarantined"
                row.outcome = f"quarantined after {row.attempts} failures: {type(exc).__name__}"
                FAILURES.labels("quarantined").inc()
                row.processed_at = utcnow()
                log.error("inbound %d quarantined: %s", inbound_id, type(exc).__name__)

    # ---- reading one message ----------------------------------------------------------------------
    def process(self, s: Session, inbound: InboundMessage) -> Outcome:
        if inbound.channel == "telegram":
            return self._process_chat(s, inbound)
        return self._process_email(s, inbound)

    def _process_email(self, s: Session, inbound: InboundMessage) -> Outcome:
        d = self.directory(s)
        parsed, mail = parse_email(d, inbound.raw)
        sender = mail.from_addr
        verp = next((v for v in (self.settings.verp_id(a) for a in inbound.rcpt_to.split(",") if a) if v), None)
        if verp is not None:
            return self._bounce(s, verp, mail)
        if mail.defects and not mail.text and not sender:
            return Outcome("quarantined", "unreadable message: " + "; ".join(mail.defects)[:300])
        if sender in self.settings.own_addresses:
            return Outcome("ignored", "message from the bot itself: not answered")
        if mail.is_automatic:
            return Outcome("ignored", f"automatic message ({mail.automatic_reason}): not answered")
        if inbound.mid_key:
            earlier = s.scalar(select(InboundMessage.id).where(InboundMessage.mid_key == inbound.mid_key,
                                                              InboundMessage.id < inbound.id).limit(1))
            if earlier is not None:
                return Outcome("ignored", f"same Message-ID and sender as inbound {earlier}: a re-sent copy, "
                                          "not answered again")
        if not sender or "@" not in sender:
            return Outcome("quarantined", "no usable sender address")
        origin = Origin("email", sender, mail.message_id, mail.references)
        if ECHO.search(parsed.text):
            return Outcome("ignored", "our own reply echoed back (auto-responder without headers): not answered")
        requester = self.requester_by_email(s, sender)
        if requester is None:
            return self._unknown_sender(s, inbound, origin, parsed)
        if self.settings.trusted_authserv_id and not authenticated(mail.headers.get("authentication-results", ""),
                                                                  self.settings.trusted_authserv_id):
            return Outcome("ignored", "sender not authenticated by the trusted server (no DMARC/DKIM pass): "
                                      "treated as spoofed, no request")
        numbers: list[int] = []
        m = SUBJECT_TAG.search(mail.subject)
        if m:
            numbers.append(int(m.group(1)))
        for h in [mail.in_reply_to, *reversed(mail.references)]:
            m = OUR_MSGID.search(h or "")
            if m:
                numbers.append(int(m.group(1)))
        return self._handle(s, Incoming(inbound, origin, parsed, requester, numbers))

    def _process_chat(self, s: Session, inbound: InboundMessage) -> Outcome:
        d = self.directory(s)
        try:
            data = json.loads(inbound.raw)
        except ValueError:
            return Outcome("quarantined", "chat update is not JSON")
        parsed, chat = parse_update(d, data)
        if chat.chat_id is None:
            return Outcome("ignored", "chat update without a chat")
        origin = Origin("telegram", str(chat.chat_id))
        requester = s.scalar(select(Requester).where(Requester.telegram_chat_id == str(chat.chat_id),
                                                     Requester.active))
        if requester is None:
            lang = "en" if chat.language_code.startswith("en") else parsed.language
            self.notifier.reply(s, origin, "not_linked", lang, None, dedupe=f"in{inbound.id}:not_linked:0",
                                inbound_id=inbound.id)
            return Outcome("done", "chat account not linked: told how to link")
        return self._handle(s, Incoming(inbound, origin, parsed, requester, []))

    # ---- what the requester wants -----------------------------------------------------------------
    def _handle(self, s: Session, msg: Incoming) -> Outcome:
        parsed = msg.parsed
        if parsed.intent == "other":
            on, off = NOTIFICATIONS_ON.search(parsed.text), NOTIFICATIONS_OFF.search(parsed.text)
            if on or off:
                return self._notifications(s, msg, on is not None and off is None)
        target = self._thread_request(s, msg)
        if parsed.intent == "cancel":
            return self._cancel(s, msg, target)
        if parsed.intent == "status":
            return self._status(s, msg)
        if target is not None and target.status == "incomplete" and parsed.intent in ("new_request", "modify"):
            return self._complete(s, msg, target)
        if parsed.intent == "modify":
            if target is None:
                return self._reply_not_found(s, msg, "modify")
            return self._modify(s, msg, target)
        if parsed.intent == "new_request":
            return self._new_request(s, msg)
        return Outcome("done", f"not a request ({parsed.intent}): no reply")

    def may_act(self, requester: Requester, req: Request) -> bool:
        """Rule 7: a requester acts on their own requests and those of their installations."""
        if requester.role == "staff" or req.requester_id == requester.id:
            return True
        mine = {i.id for i in requester.installations}
        if req.location_id is not None:
            return req.location_id in mine
        return bool(mine & {i.id for i in req.requester.installations})

    def _thread_request(self, s: Session, msg: Incoming) -> Request | None:
        """The request a message is about: subject tag, our Message-IDs, then a cited reference.

        A reference is honoured only if the sender may act on that request (rule 7)."""
        numbers = list(msg.thread_numbers)
        if msg.parsed.ref:
            numbers.append(int(msg.parsed.ref.split("-")[1]))
        for n in numbers:
            req = s.get(Request, n)
            if req is not None and self.may_act(msg.requester, req):
                return req
        return None

    def _bounce(self, s: Session, outbox_id: int, mail) -> Outcome:  # noqa: ANN001 - parsers.mime.MailMessage
        """A bounce of one of our replies (VERP): count hard ones against the address."""
        row = s.get(Outbox, outbox_id)
        if row is None:
            return Outcome("ignored", f"bounce for unknown outbox {outbox_id}")
        hard = mail.dsn_status.startswith("5") if mail.dsn_status else True
        requester = s.scalar(select(Requester).where(Requester.email == row.to_addr))
        if requester is not None and hard:
            requester.bounces += 1
            if requester.bounces >= self.settings.hard_bounces_before_undeliverable and not requester.undeliverable:
                requester.undeliverable = True
                log.warning("requester %d marked undeliverable after %d hard bounces", requester.id, requester.bounces)
        return Outcome("ignored", f"{'hard' if hard else 'soft'} bounce of outbox {outbox_id} ({row.kind})")

    def _unknown_sender(self, s: Session, inbound: InboundMessage, origin: Origin, parsed: ParsedRequest) -> Outcome:
        if parsed.intent == "other":  # spam and strays: answering would be backscatter
            return Outcome("ignored", "unknown sender, not about a request: no reply")
        since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        already = s.scalar(select(Outbox.id).where(Outbox.to_addr == origin.address, Outbox.kind == "unknown_sender",
                                                   Outbox.created_at >= since))
        if already:
            return Outcome("done", "unknown sender, access reply already sent today: no request")
        coordination = s.scalar(select(Requester.email).where(Requester.role == "staff", Requester.active)) \
            or self.settings.bot_address
        self.notifier.reply(s, origin, "unknown_sender", parsed.language, None,
                            dedupe=f"in{inbound.id}:unknown_sender:0", inbound_id=inbound.id,
                            sender=origin.address, coordination=coordination)
        return Outcome("done", "unknown sender: access reply, no request")

    def _reply(self, s: Session, msg: Incoming, kind: str, req: Request | None, **ctx: object) -> None:
        self.notifier.reply(s, msg.origin, kind, msg.lang, req, dedupe=msg.key(kind, req), inbound_id=msg.inbound.id,
                            **ctx)

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

    def _announce(self, s: Session, msg: Incoming, req: Request, problems: list[str]) -> None:
        kind = "incomplete" if problems else "submitted"
        self._reply(s, msg, kind, req, r=self.notifier.summary(s, req), problems=problems)

    # ---- intents ----------------------------------------------------------------------------------
    def _new_request(self, s: Session, msg: Incoming) -> Outcome:
        d = self.directory(s)
        now = utcnow()
        created: list[Request] = []
        parsed, requester = msg.parsed, msg.requester
        for i in range(max(1, len(parsed.appointments))):
            req = Request(requester_id=requester.id, status="incomplete", channel=msg.origin.channel,
                          language=parsed.language, source_language="fr", inbound_id=msg.inbound.id,
                          created_at=now, updated_at=now, problems="[]")
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
            workflow.record(s, req, actor=f"requester:{requester.email}", action="created", to_status="incomplete",
                            inbound_id=msg.inbound.id)
            if not problems:
                workflow.transition(s, req, "submitted", actor=f"requester:{requester.email}",
                                    reason="all rules met", inbound_id=msg.inbound.id)
            self._announce(s, msg, req, problems)
            created.append(req)
        return Outcome("done", ", ".join(f"{r.ref} {r.status}" for r in created))

    def _complete(self, s: Session, msg: Incoming, req: Request) -> Outcome:
        changed = self._apply(req, msg.parsed, self.directory(s))
        req.updated_at = utcnow()
        problems = self._check(req, msg.parsed)
        req.problems = json.dumps(problems)
        actor = f"requester:{msg.requester.email}"
        workflow.record(s, req, actor=actor, action="completed_fields", reason=",".join(changed),
                        inbound_id=msg.inbound.id)
        if not problems:
            workflow.transition(s, req, "submitted", actor=actor, reason="completed by reply", inbound_id=msg.inbound.id)
        self._announce(s, msg, req, problems)
        return Outcome("done", f"{req.ref} {req.status} (reply completed {len(changed)} fields)")

    def _modify(self, s: Session, msg: Incoming, req: Request) -> Outcome:
        if req.status in workflow.FINAL:
            return self._reply_not_found(s, msg, "modify")
        changed = self._apply(req, msg.parsed, self.directory(s))
        req.updated_at = utcnow()
        workflow.record(s, req, actor=f"requester:{msg.requester.email}", action="modified", reason=",".join(changed),
                        inbound_id=msg.inbound.id)
        self._reply(s, msg, "modified", req, r=self.notifier.summary(s, req))
        return Outcome("done", f"{req.ref} modified ({len(changed)} fields)")

    def _cancel(self, s: Session, msg: Incoming, req: Request | None) -> Outcome:
        if req is None or req.status in workflow.FINAL:
            return self._reply_not_found(s, msg, "cancel")
        late = workflow.cancel(s, req, workflow.Actor("requester", msg.requester.email), reason="cancelled by requester",
                               tz=self.tz, late_hours=self.settings.late_cancellation_hours, inbound_id=msg.inbound.id)
        self._reply(s, msg, "cancelled", req, r=self.notifier.summary(s, req), late=late,
                    late_hours=self.settings.late_cancellation_hours)
        return Outcome("done", f"{req.ref} cancelled{' (late)' if late else ''}")

    def _reply_not_found(self, s: Session, msg: Incoming, action: str) -> Outcome:
        self._reply(s, msg, "not_found", None, ref=msg.parsed.ref, action=action)
        return Outcome("done", f"{action}: no request the sender may act on")

    def _notifications(self, s: Session, msg: Incoming, on: bool) -> Outcome:
        msg.requester.notifications = on
        self._reply(s, msg, "notifications_changed", None, on=on)
        return Outcome("done", f"notifications turned {'on' if on else 'off'}")

    def upcoming(self, s: Session, requester: Requester, limit: int = 50) -> list[Request]:
        """The requester's upcoming requests and those of their installations ('mes demandes').

        Each branch (own requests, each installation, undated ones) is an index-ordered query with
        its own LIMIT; merging a few small lists is cheap, whereas one query with an OR across
        columns scans every request (measured by bench/search_bench.py)."""
        today = datetime.now(self.tz).date()
        active = Request.status.in_(ACTIVE)
        order = (Request.date, Request.start_time, Request.id)
        if requester.role == "staff":
            branches = [select(Request).where(active, Request.date >= today)]
        else:
            branches = [select(Request).where(Request.requester_id == requester.id, active, Request.date >= today)]
            branches += [select(Request).where(Request.location_id == i.id, active, Request.date >= today)
                         for i in requester.installations]
        undated = select(Request).where(active, Request.date.is_(None))
        if requester.role != "staff":
            undated = undated.where(Request.requester_id == requester.id)
        found: dict[int, Request] = {}
        for q in branches:  # the list needs no requester row: skip the eager join
            for r in s.scalars(q.options(lazyload(Request.requester)).order_by(*order).limit(limit)):
                found[r.id] = r
        dated = sorted(found.values(), key=lambda r: (r.date, r.start_time or datetime.min.time(), r.id))[:limit]
        return dated + list(s.scalars(undated.order_by(Request.id).limit(max(0, limit - len(dated)))))

    def status_lines(self, s: Session, reqs: list[Request]) -> list[dict]:
        """Rows for 'mes demandes': columns for the table, and a one-line form for the chat."""
        d = self.directory(s)
        places = {i.id: i.name for i in d.installations.values()}
        items = []
        for r in reqs:
            hhmm = r.start_time.strftime("%H:%M") if r.start_time else "—"
            row = {"ref": r.ref, "time": hhmm, "status": r.status, "place": places.get(r.location_id, "—"),
                   "date_fr": format_date(r.date, "fr") or "date à préciser",
                   "date_en": format_date(r.date, "en") or "date to be given",
                   "language_fr": d.language_name(r.target_language, "fr") or "—",
                   "language_en": d.language_name(r.target_language, "en") or "—"}
            row["line_fr"] = f"{r.ref} — {row['date_fr']}, {hhmm} — {row['language_fr']} — {r.status}"
            row["line_en"] = f"{r.ref} — {row['date_en']}, {hhmm} — {row['language_en']} — {r.status}"
            items.append(row)
        return items

    def _status(self, s: Session, msg: Incoming) -> Outcome:
        items = self.status_lines(s, self.upcoming(s, msg.requester))
        self._reply(s, msg, "status_list", None, requests=items)
        return Outcome("done", f"status list sent ({len(items)} requests)")
