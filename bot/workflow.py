"""The status machine of SPEC.md §4: the one place where a request changes status.

Every channel (email, chat, command line) calls these functions. They check who may do what,
refuse what the machine does not allow with a `WorkflowError` whose message can be shown as is,
record an event per change, and leave the requester's notification to `bot.notify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, literal_column, select
from sqlalchemy.orm import Session

from store.db import utcnow
from store.models import Communication, Interpreter, Request, RequestEvent

from . import rules

FINAL = {"completed", "cancelled", "unfilled"}
ACTIVE = ("incomplete", "submitted", "offered", "confirmed")
# Our own constants, written into the SQL: `in_(ACTIVE)` would be an expanding parameter,
# re-processed at every execution (40 of the 90 microseconds of the duplicate check).
IS_ACTIVE = Request.__table__.c.status.in_([literal_column(f"'{status}'") for status in ACTIVE])
ALLOWED: dict[str, set[str]] = {
    "incomplete": {"submitted", "cancelled"},
    "submitted": {"offered", "unfilled", "cancelled"},
    "offered": {"confirmed", "submitted", "unfilled", "cancelled"},
    "confirmed": {"completed", "cancelled", "unfilled"},
    "completed": set(),
    "cancelled": set(),
    "unfilled": set(),
}


INSERT_EVENT = insert(RequestEvent.__table__)


class WorkflowError(ValueError):
    """A change that is not allowed; the message explains it in plain words."""


@dataclass(frozen=True)
class Actor:
    """Who acts: staff (Telegram id), an interpreter (roster id), a requester (email) or the system."""

    kind: str  # staff, interpreter, requester, system
    id: str
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"


def record(session: Session, req: Request, *, actor: str, action: str, reason: str = "",
           from_status: str | None = None, to_status: str | None = None, inbound_id: int | None = None) -> None:
    """Append one event to the request's history (a plain INSERT: history is never read back in
    the same transaction, and going through the unit of work cost more than the change itself)."""
    record_all(session, [event(req, actor=actor, action=action, reason=reason, from_status=from_status,
                               to_status=to_status, inbound_id=inbound_id)])


def event(req: Request, *, actor: str, action: str, reason: str = "", from_status: str | None = None,
          to_status: str | None = None, inbound_id: int | None = None) -> dict:
    """One history row, for `record_all`."""
    return dict(request_id=req.id, at=utcnow(), actor=actor, action=action, from_status=from_status,
                to_status=to_status, reason=reason[:2000], inbound_id=inbound_id)


def record_all(session: Session, events: list[dict]) -> None:
    """Several events in one statement (a new request has two: created, then its status)."""
    session.connection().execute(INSERT_EVENT, events if len(events) > 1 else events[0])


def transition(session: Session, req: Request, to: str, *, actor: str, reason: str = "",
               inbound_id: int | None = None) -> str:
    """Move *req* to status *to*; returns the previous status."""
    current = req.status
    if to not in ALLOWED.get(current, set()):
        if current in FINAL:
            raise WorkflowError(f"{req.ref} est déjà {current} / is already {current}: it cannot become {to}.")
        raise WorkflowError(f"{req.ref} est {current} / is {current}: it cannot go to {to} from there.")
    req.status = to
    req.updated_at = utcnow()
    record(session, req, actor=actor, action="status", reason=reason, from_status=current, to_status=to,
           inbound_id=inbound_id)
    return current


def _require_staff(actor: Actor) -> None:
    if actor.kind not in ("staff", "system"):
        raise WorkflowError("Réservé à l'équipe de la Banque / Staff only.")


def offer(session: Session, req: Request, interpreter: Interpreter, actor: Actor, tz: ZoneInfo) -> list[str]:
    """Offer *req* to *interpreter*; returns warnings (language not spoken, already booked)."""
    _require_staff(actor)
    warnings = []
    langs = set(filter(None, interpreter.languages.split(";")))
    if req.target_language and req.target_language not in langs:
        warnings.append(f"{interpreter.name} ne parle pas la langue demandée ({req.target_language}) / "
                        f"does not speak the requested language.")
    clash = booked_conflict(session, req, interpreter.id, tz)
    if clash:
        warnings.append(f"{interpreter.name} est déjà réservé(e) à cette heure ({clash}) / is already booked then.")
    transition(session, req, "offered", actor=actor.label, reason=f"offered to {interpreter.id}")
    req.assigned_interpreter_id = interpreter.id
    return warnings


def booked_conflict(session: Session, req: Request, interpreter_id: str, tz: ZoneInfo) -> str | None:
    """Reference of another request of the same interpreter that overlaps *req*'s time slot."""
    start = rules.starts_at(req, tz)
    if start is None or not req.duration_minutes:
        return None
    end = start + timedelta(minutes=req.duration_minutes)
    others = session.scalars(select(Request).where(
        Request.assigned_interpreter_id == interpreter_id, Request.id != req.id, Request.date == req.date,
        Request.status.in_(("offered", "confirmed"))))
    for o in others:
        o_start = rules.starts_at(o, tz)
        if o_start and o.duration_minutes and o_start < end and start < o_start + timedelta(minutes=o.duration_minutes):
            return o.ref
    return None


def _check_interpreter(req: Request, actor: Actor) -> None:
    if actor.kind == "interpreter" and req.assigned_interpreter_id != actor.id:
        raise WorkflowError(f"{req.ref} ne vous a pas été offerte / was not offered to you.")
    if actor.kind not in ("staff", "interpreter", "system"):
        raise WorkflowError("Réservé à l'équipe et aux interprètes / Staff and interpreters only.")


def accept(session: Session, req: Request, actor: Actor) -> None:
    _check_interpreter(req, actor)
    if req.status != "offered":
        raise WorkflowError(f"{req.ref} n'est pas en attente d'une réponse d'interprète / is not awaiting an "
                            f"interpreter's answer (status: {req.status}).")
    transition(session, req, "confirmed", actor=actor.label, reason="interpreter accepted")


def decline(session: Session, req: Request, actor: Actor, reason: str = "") -> None:
    _check_interpreter(req, actor)
    if req.status != "offered":
        raise WorkflowError(f"{req.ref} n'est pas en attente d'une réponse d'interprète / is not awaiting an "
                            f"interpreter's answer (status: {req.status}).")
    transition(session, req, "submitted", actor=actor.label, reason=reason or "interpreter declined")
    req.assigned_interpreter_id = None


def cancel(session: Session, req: Request, actor: Actor, *, reason: str, tz: ZoneInfo, late_hours: int,
           now: datetime | None = None, inbound_id: int | None = None) -> bool:
    """Cancel (always possible before a final status); returns True for a late, billable cancellation."""
    late = rules.is_late_cancellation(req, now=now or datetime.now(tz), tz=tz, hours=late_hours)
    transition(session, req, "cancelled", actor=actor.label,
               reason=("late cancellation: " if late else "") + (reason or "cancelled"), inbound_id=inbound_id)
    req.late_cancellation = late
    return late


def complete(session: Session, req: Request, actor: Actor) -> None:
    _require_staff(actor)
    transition(session, req, "completed", actor=actor.label, reason="appointment took place")


def unfilled(session: Session, req: Request, actor: Actor, reason: str = "") -> None:
    _require_staff(actor)
    transition(session, req, "unfilled", actor=actor.label, reason=reason or "no interpreter available")


def add_communication(session: Session, req: Request, minutes: int, note: str, actor: Actor) -> Communication:
    """Rule 8: a communication made at the requester's demand is billed in every case."""
    _require_staff(actor)
    if not 1 <= minutes <= 600:
        raise WorkflowError("La durée doit être entre 1 et 600 minutes / Minutes must be between 1 and 600.")
    c = Communication(request_id=req.id, minutes=minutes, note=note[:500], actor=actor.label, at=utcnow())
    session.add(c)
    record(session, req, actor=actor.label, action="communication", reason=f"{minutes} min")
    return c
