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
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from parsers.directory import Directory
from parsers.request import ParsedRequest, parse_email, parse_update
from store.db import Store, utcnow
from store.directory_sync import directory_from_store
from store.models import InboundMessage, Outbox, Request, Requester
from store.pg_notify import notify_processed

from . import rules, workflow
from .config import Settings
from .metrics import FAILURES, LATENCY, PROCESSED
from .notify import Notifier, Origin
from .outbox import count_replies_last_hour
from .replies import format_date
from .upcoming import upcoming
from .workflow import IS_ACTIVE

log = logging.getLogger("biq.pipeline")
MAX_ATTEMPTS = 3
REQUESTER_TTL = 10.0  # seconds a requester row (and the address map, on a miss) is reused
OUR_MSGID = re.compile(r"<biq-0*(\d{1,9})\.[0-9a-f]+@", re.I)
SUBJECT_TAG = re.compile(r"\[\s*BIQ-0*(\d{1,9})\s*\]", re.I)
ECHO = re.compile(r"—\s*biq-bot\s*—|-\s*biq-bot\s*-")
MISSING = object()

# The statements run for every message, built once (building one costs more than running it).
_IN = InboundMessage.__table__
WAITING = (select(_IN).where(_IN.c.state == "new", _IN.c.received_at <= bindparam("before"))
           .order_by(_IN.c.id).limit(bindparam("n")))
STEAL_AFTER = timedelta(seconds=3)  # a share left this long (its worker died or lags) is anyone's
WAITING_IN_SHARD = (select(_IN).where(_IN.c.state == "new", _IN.c.id % bindparam("of") == bindparam("k"))
                    .order_by(_IN.c.id).limit(bindparam("n")))
# Claiming takes SQLite's write lock with its first statement (so it sees every commit before it)
# and skips rows another PostgreSQL transaction holds; 'working' never outlives the transaction.
CLAIM = (update(_IN).where(_IN.c.id.in_(select(_IN.c.id).where(_IN.c.id.in_(bindparam("ids", expanding=True)),
                                                              _IN.c.state == "new")
                                        .with_for_update(skip_locked=True).scalar_subquery()))
         .values(state="working").returning(_IN.c.id))
FINISH = (update(_IN).where(_IN.c.id == bindparam("b_id"))
          .values(state=bindparam("b_state"), outcome=bindparam("b_outcome"), processed_at=bindparam("b_at")))
WAITING_UNLOCKED = (select(_IN.c.id, _IN.c.channel, _IN.c.raw, _IN.c.rcpt_to, _IN.c.mid_key, _IN.c.received_at)
                    .where(_IN.c.state == "new", _IN.c.received_at <= bindparam("before"))
                    .order_by(_IN.c.id).limit(bindparam("n")).with_for_update(skip_locked=True))
EARLIER_COPY = select(_IN.c.id).where(_IN.c.mid_key == bindparam("key"), _IN.c.id < bindparam("id")).limit(1)
FIRST_COPIES = (select(_IN.c.mid_key, func.min(_IN.c.id)).where(_IN.c.mid_key.in_(bindparam("keys", expanding=True)))
                .group_by(_IN.c.mid_key))
_RQ = Request.__table__
INSERT_REQUEST = insert(_RQ)
REQUEST_COLUMNS = [c.key for c in _RQ.columns if c.key != "id"]


SAME_START = (select(_RQ.c.id).where(_RQ.c.requester_id == bindparam("requester"), _RQ.c.date == bindparam("date"),
                                     _RQ.c.start_time == bindparam("start"), _RQ.c.target_language == bindparam("lang"),
                                     IS_ACTIVE).order_by(_RQ.c.id).limit(1))


def count_processed(outcomes: list[tuple[str, float, int]]) -> None:
    """Metrics for processed messages: (state, seconds since intake, inbound id) each."""
    for state, seconds, _ in outcomes:
        PROCESSED.labels(state).inc()
        LATENCY.observe(seconds)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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

    inbound: object  # the inbound_messages row (id, channel, raw, ...)
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
        self._ids_at = 0.0
        self._requesters: dict[int, tuple[float, Requester]] = {}
        self.notifier = Notifier(settings, self.directory)
        self.on_processed: Callable[[list[tuple[str, float, int]]], None] = count_processed
        self.on_taken: Callable[[int], None] = lambda n: None  # n messages taken (negative: done with)

    # ---- directory ------------------------------------------------------------------------------
    def directory(self, session: Session) -> Directory:
        if self._directory is None:
            self._directory = directory_from_store(session)
        return self._directory

    def reload_directory(self) -> None:
        self._directory = None
        self._requester_ids = None
        self._requesters = {}

    def requester_by_email(self, s: Session, email: str) -> Requester | None:
        """Active requester by address, for reading (who they are, their installations).

        Rows are cached for REQUESTER_TTL seconds: a busy requester writes many messages in a row
        and loading the same row (and its installations) for each was a sixth of a message's
        cost. A cached row is used detached, as it is: copying it into each session (`merge`)
        cost more than the lookup it saved, and attaching it to a second session drags its
        installations along and collides with the copies another requester brought in. The rare
        handler that changes the requester writes through `attached`. A row a rolled-back
        session expired is read again."""
        rid = self._requester_id(s, email)
        if rid is None:
            return None
        req = s.identity_map.get(identity_key(Requester, rid))  # already here for this batch
        if req is None:
            at, req = self._requesters.get(rid, (0.0, None))
            if req is None or time.monotonic() - at >= REQUESTER_TTL or inspect(req).expired_attributes:
                req = s.get(Requester, rid)
                if req is not None:
                    req.installations  # noqa: B018 - loaded now, so the cached copy carries them
                    self._requesters[rid] = (time.monotonic(), req)
        return req if req is not None and req.active and req.email == email else None

    def attached(self, s: Session, requester: Requester) -> Requester:
        """This session's own copy of *requester*, to change it (and drop the cached one)."""
        self.forget_requester(requester.id)
        return requester if requester in s else s.get(Requester, requester.id)

    def forget_requester(self, requester_id: int) -> None:
        """A change made to a requester: the next message reads the row again."""
        self._requesters.pop(requester_id, None)

    def _requester_id(self, s: Session, email: str) -> int | None:
        """Ids by address are cached; a miss re-reads the map at most every REQUESTER_TTL seconds,
        so a requester added by `directory load` is known without restarting."""
        if self._requester_ids is None or (email not in self._requester_ids
                                           and time.monotonic() - self._ids_at > REQUESTER_TTL):
            self._requester_ids = dict(s.execute(select(Requester.email, Requester.id).where(Requester.active)).all())
            self._ids_at = time.monotonic()
        return self._requester_ids.get(email)

    # ---- driving ----------------------------------------------------------------------------------
    def process_pending(self, limit: int = 100, batch: int = 25, shard: tuple[int, int] | None = None) -> int:
        """Process up to *limit* waiting messages; returns how many were handled.

        Messages are processed *batch* at a time in one transaction (far fewer commits). On
        SQLite, whose write lock covers the whole database, they are read and parsed first
        (parsing is most of the CPU) and claimed only then, so the lock is held for the database
        work alone; *shard* (k, n) makes n workers prefer different messages (id mod n), any
        worker taking any message left waiting a few seconds. On PostgreSQL the transaction that
        processes a batch first locks its rows (FOR UPDATE SKIP LOCKED: only them, and none
        another transaction holds), so no two workers or instances ever parse the same message.
        If any message of a batch fails, the batch is rolled back and its messages are processed
        one by one, so a bad message only ever affects itself.
        """
        handled = 0
        while handled < limit:
            size = min(batch, limit - handled)
            if self.store.is_postgres:  # the rows its transaction locks are the batch's claim:
                rows: list = []  # _process_rows appends them, so a failed batch can be redone
                read = None
            else:
                rows = self._waiting(size, shard)
                self.on_taken(len(rows))
                read = {row.id: self.read(row) for row in rows}
                if not rows:
                    break
            try:
                n = self._process_rows(rows, read, lock=size if self.store.is_postgres else 0)
            except Exception:  # noqa: BLE001 - isolate the culprit below
                if not rows:  # nothing was taken: the store itself failed, the caller waits and retries
                    raise
                log.warning("a batch failed; processing its messages one by one", exc_info=True)
                n = sum(self._process_alone(row, read[row.id] if read else self.read(row)) for row in rows)
            finally:
                self.on_taken(-len(rows))
            if not rows:
                break
            handled += max(n, 1)  # a batch another worker claimed first still moves us on
        return handled

    def _waiting(self, size: int, shard: tuple[int, int] | None) -> list:
        """Waiting messages (oldest first), read without a lock: the claim decides."""
        with self.store.engine.connect() as c:
            if shard is None or shard[1] <= 1:
                return c.execute(WAITING, {"n": size, "before": utcnow()}).all()
            return (c.execute(WAITING_IN_SHARD, {"n": size, "k": shard[0], "of": shard[1]}).all()
                    or c.execute(WAITING, {"n": size, "before": utcnow() - STEAL_AFTER}).all())

    def read(self, row) -> object:  # noqa: ANN001 - an inbound_messages row
        """Parse one stored message (no database access); errors are kept for the processing step."""
        try:
            if row.channel == "telegram":
                try:
                    data = json.loads(row.raw)
                except ValueError:
                    return None
                return parse_update(self._directory_now(), data)
            return parse_email(self._directory_now(), row.raw)
        except Exception as exc:  # noqa: BLE001 - parsing never raises by contract; if it does, count it
            return exc

    def _directory_now(self) -> Directory:
        if self._directory is None:
            with self.store.session() as s:
                return self.directory(s)
        return self._directory

    def _process_rows(self, rows: list, read: dict | None, lock: int = 0) -> int:  # noqa: ANN001
        """Claim *rows* and process those still waiting; *read* holds their parsed form, or is
        None to parse them once claimed. With *lock* (PostgreSQL), the transaction instead locks
        up to that many waiting rows no other transaction holds, appends them to *rows*, and
        processes them: the row locks are the claim, held until the outcome is committed (one
        transaction and no interim 'working' row versions per batch)."""
        outcomes: list[tuple[object, Outcome]] = []
        with self.store.write_session() as s:
            if lock:
                rows += s.connection().execute(WAITING_UNLOCKED, {"n": lock, "before": utcnow()}).all()
                self.on_taken(len(rows))
                mine = list(rows)
            else:
                claimed = set(s.connection().execute(CLAIM, {"ids": [r.id for r in rows]}).scalars())
                mine = [row for row in rows if row.id in claimed]
            if read is None:
                read = {row.id: self.read(row) for row in mine}
            self._look_ahead(s, mine, read)
            for row in mine:
                outcomes.append((row, self.process(s, row, read[row.id])))
            if outcomes:
                now = utcnow()
                s.flush()
                if self.store.is_postgres:  # other instances may hold these messages' senders
                    notify_processed(s.connection(), [row.id for row, _ in outcomes])
                s.connection().execute(FINISH, [{"b_id": row.id, "b_state": o.state, "b_outcome": o.summary[:2000],
                                                 "b_at": now} for row, o in outcomes])
        now = utcnow()
        for row, outcome in outcomes:
            log.info("inbound %d (%s): %s", row.id, outcome.state, outcome.summary)
        self.on_processed([(o.state, max(0.0, (now - _aware(row.received_at)).total_seconds()), row.id)
                           for row, o in outcomes])
        return len(outcomes)

    def _look_ahead(self, s: Session, rows: list, read: dict) -> None:  # noqa: ANN001
        """Ask once for the whole batch what each message would otherwise ask alone: the first
        copy received of each Message-ID, and each sender's replies this hour (a round trip per
        question and message was a third of the statements on PostgreSQL)."""
        keys = {row.mid_key for row in rows if row.channel != "telegram" and row.mid_key}
        if keys:
            s.info["first_copy"] = dict(s.connection().execute(FIRST_COPIES, {"keys": sorted(keys)}).all())
        senders = {r[1].from_addr for row in rows if row.channel != "telegram"
                   and isinstance(r := read.get(row.id), tuple) and r[1].from_addr}
        count_replies_last_hour(s, senders)

    def _earlier_copy(self, s: Session, inbound) -> int | None:  # noqa: ANN001
        """An earlier message with the same Message-ID and sender (a re-sent copy), if any."""
        first = s.info.get("first_copy", {}).get(inbound.mid_key)
        if first is not None:
            return first if first < inbound.id else None
        return s.connection().execute(EARLIER_COPY, {"key": inbound.mid_key, "id": inbound.id}).scalar()

    def _process_alone(self, row, read: object) -> int:  # noqa: ANN001
        try:
            return self._process_rows([row], {row.id: read})
        except Exception as exc:  # noqa: BLE001 - one bad message must never block the others
            log.exception("inbound %d: processing failed", row.id)
            self._count_failure(row.id, exc)
            return 1

    def _count_failure(self, inbound_id: int, exc: Exception) -> None:
        with self.store.write_session() as s:
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
    def process(self, s: Session, inbound, read: object = MISSING) -> Outcome:  # noqa: ANN001 - inbound row
        if read is MISSING:
            read = self.read(inbound)
        if isinstance(read, Exception):
            raise read
        if inbound.channel == "telegram":
            return self._process_chat(s, inbound, read)
        return self._process_email(s, inbound, read)

    def _process_email(self, s: Session, inbound, read: tuple) -> Outcome:  # noqa: ANN001
        parsed, mail = read
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
            earlier = self._earlier_copy(s, inbound)
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

    def _process_chat(self, s: Session, inbound, read: tuple | None) -> Outcome:  # noqa: ANN001
        if read is None:
            return Outcome("quarantined", "chat update is not JSON")
        parsed, chat = read
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
        # read afresh (a cached copy in this session may be a few seconds old): a count is updated
        requester = s.scalar(select(Requester).where(Requester.email == row.to_addr)
                             .execution_options(populate_existing=True))
        if requester is not None and hard:
            self.forget_requester(requester.id)
            requester.bounces += 1
            if requester.bounces >= self.settings.hard_bounces_before_undeliverable and not requester.undeliverable:
                requester.undeliverable = True
                log.warning("requester %d marked undeliverable after %d hard bounces", requester.id, requester.bounces)
        return Outcome("ignored", f"{'hard' if hard else 'soft'} bounce of outbox {outbox_id} ({row.kind})")

    def _unknown_sender(self, s: Session, inbound, origin: Origin, parsed: ParsedRequest) -> Outcome:
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

    def _duplicate_of(self, s: Session, req: Request) -> int | None:
        """Rule 9: same requester, languages and start: flagged, never merged."""
        if req.date is None or req.start_time is None:
            return None
        return s.connection().execute(SAME_START, {"requester": req.requester_id, "date": req.date,
                                                   "start": req.start_time, "lang": req.target_language}).scalar()

    def _announce(self, s: Session, msg: Incoming, req: Request, problems: list[str]) -> None:
        kind = "incomplete" if problems else "submitted"
        self._reply(s, msg, kind, req, r=self.notifier.summary(s, req), problems=problems)

    # ---- intents ----------------------------------------------------------------------------------
    def _new_request(self, s: Session, msg: Incoming) -> Outcome:
        """Build each request in memory, check it, then write it once with its final status."""
        d = self.directory(s)
        now = utcnow()
        created: list[Request] = []
        parsed, requester = msg.parsed, msg.requester
        actor = f"requester:{requester.email}"
        for i in range(max(1, len(parsed.appointments))):
            req = Request(requester_id=requester.id, status="incomplete", channel=msg.origin.channel,
                          language=parsed.language, source_language="fr", inbound_id=msg.inbound.id,
                          created_at=now, updated_at=now, late_cancellation=False,
                          series_id=created[0].id if created else None)
            self._apply(req, parsed, d, i)
            req.duplicate_of = self._duplicate_of(s, req)
            problems = self._check(req, parsed)
            req.problems = json.dumps(problems)
            req.status = "incomplete" if problems else "submitted"
            values = req.__dict__  # a new, transient row: what was set is here, the rest is None
            req.id = s.connection().execute(INSERT_REQUEST, {k: values.get(k) for k in REQUEST_COLUMNS}
                                            ).inserted_primary_key[0]
            if not created and len(parsed.appointments) > 1:
                req.series_id = req.id
                s.connection().execute(update(_RQ).where(_RQ.c.id == req.id).values(series_id=req.id))
            events = [workflow.event(req, actor=actor, action="created", to_status="incomplete",
                                     inbound_id=msg.inbound.id)]
            if not problems:
                events.append(workflow.event(req, actor=actor, action="status", reason="all rules met",
                                             from_status="incomplete", to_status="submitted", inbound_id=msg.inbound.id))
            workflow.record_all(s, events)
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
        if not changed:  # "can we push it to next week?": asked, but nothing the bot can apply
            p = msg.parsed
            stated = any(v is not None for a in p.appointments for v in (a.date, a.start_time, a.duration_minutes)) \
                or any(v is not None for v in (p.mode, p.location, p.target_language, p.source_language, p.address,
                                               p.interpreter_type, p.preferred_interpreter, p.notify_user,
                                               p.user_phone))
            self._reply(s, msg, "unchanged", req, r=self.notifier.summary(s, req), stated=stated)
            return Outcome("done", f"{req.ref} unchanged: asked what to change")
        req.updated_at = utcnow()
        workflow.record(s, req, actor=f"requester:{msg.requester.email}", action="modified", reason=",".join(changed),
                        inbound_id=msg.inbound.id)
        self._reply(s, msg, "modified", req, r=self.notifier.summary(s, req))
        return Outcome("done", f"{req.ref} modified ({len(changed)} fields)")

    def _cancel(self, s: Session, msg: Incoming, target: Request | None) -> Outcome:
        """Cancel the request the message is about, and each other one it cites ("annuler BIQ-6400 et
        BIQ-6401"), each with its own reply; one the sender may not act on is left alone."""
        reqs = [target] if target is not None else []
        for ref in msg.parsed.also_refs:
            req = s.get(Request, int(ref.split("-")[1]))
            if req is not None and req not in reqs and self.may_act(msg.requester, req):
                reqs.append(req)
        reqs = [r for r in reqs if r.status not in workflow.FINAL]
        if not reqs:
            return self._reply_not_found(s, msg, "cancel")
        done = []
        for req in reqs:
            late = workflow.cancel(s, req, workflow.Actor("requester", msg.requester.email),
                                   reason="cancelled by requester", tz=self.tz,
                                   late_hours=self.settings.late_cancellation_hours, inbound_id=msg.inbound.id)
            self._reply(s, msg, "cancelled", req, r=self.notifier.summary(s, req), late=late,
                        late_hours=self.settings.late_cancellation_hours)
            done.append(f"{req.ref} cancelled{' (late)' if late else ''}")
        return Outcome("done", "; ".join(done))

    def _reply_not_found(self, s: Session, msg: Incoming, action: str) -> Outcome:
        self._reply(s, msg, "not_found", None, ref=msg.parsed.ref, action=action)
        return Outcome("done", f"{action}: no request the sender may act on")

    def _notifications(self, s: Session, msg: Incoming, on: bool) -> Outcome:
        self.attached(s, msg.requester).notifications = on
        self._reply(s, msg, "notifications_changed", None, on=on)
        return Outcome("done", f"notifications turned {'on' if on else 'off'}")

    def upcoming(self, s: Session, requester: Requester, limit: int = 50) -> list[Request]:
        """The requester's upcoming requests and those of their installations ('mes demandes'):
        by date and time, then the undated ones by number, at most *limit* (`bot.upcoming`)."""
        return upcoming(s, requester, datetime.now(self.tz).date(), limit)

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
