"""The status machine of SPEC.md §4: the one place where a request changes status.

Every channel (email, chat, command line) calls `transition`; it refuses what the machine does not
allow with a `WorkflowError` whose message can be shown as is, and records an event per change.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from store.db import utcnow
from store.models import Request, RequestEvent

FINAL = {"completed", "cancelled", "unfilled"}
ALLOWED: dict[str, set[str]] = {
    "incomplete": {"submitted", "cancelled"},
    "submitted": {"offered", "unfilled", "cancelled"},
    "offered": {"confirmed", "submitted", "unfilled", "cancelled"},
    "confirmed": {"completed", "cancelled", "unfilled"},
    "completed": set(),
    "cancelled": set(),
    "unfilled": set(),
}


class WorkflowError(ValueError):
    """A change the status machine does not allow; the message explains it in plain words."""


def record(session: Session, req: Request, *, actor: str, action: str, reason: str = "",
           from_status: str | None = None, to_status: str | None = None, inbound_id: int | None = None) -> None:
    session.add(RequestEvent(request_id=req.id, at=utcnow(), actor=actor, action=action, from_status=from_status,
                             to_status=to_status, reason=reason[:2000], inbound_id=inbound_id))


def transition(session: Session, req: Request, to: str, *, actor: str, reason: str = "",
               inbound_id: int | None = None) -> str:
    """Move *req* to status *to*; returns the previous status."""
    current = req.status
    if to not in ALLOWED.get(current, set()):
        if current in FINAL:
            raise WorkflowError(f"{req.ref} is already {current}; it cannot become {to}.")
        raise WorkflowError(f"{req.ref} is {current}; it cannot go to {to} from there.")
    req.status = to
    req.updated_at = utcnow()
    record(session, req, actor=actor, action="status", reason=reason, from_status=current, to_status=to,
           inbound_id=inbound_id)
    return current
