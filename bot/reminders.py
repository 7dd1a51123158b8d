"""The day-before reminder of a confirmed appointment, to the requester (email, and chat when
linked) and to the interpreter in the chat. `reminded_at` is set in the same transaction as the
messages are queued, so a reminder is never sent twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from store.db import Store, utcnow
from store.models import Interpreter, Request

from .notify import queue_chat
from .pipeline import Pipeline


def send_due_reminders(store: Store, pipeline: Pipeline, now: datetime | None = None) -> int:
    settings = pipeline.settings
    tz = ZoneInfo(settings.timezone)
    local = (now or datetime.now(tz)).astimezone(tz)
    if local.hour < settings.reminder_hour:
        return 0
    tomorrow = local.date() + timedelta(days=1)
    sent = 0
    with store.session() as s:
        rows = s.scalars(select(Request).where(Request.status == "confirmed", Request.date == tomorrow,
                                               Request.reminded_at.is_(None)).with_for_update(skip_locked=True, of=Request))
        for req in rows:
            req.reminded_at = utcnow()
            pipeline.notifier.status_changed(s, req, "reminder", event_key=f"reminder:{req.id}")
            interp = s.get(Interpreter, req.assigned_interpreter_id) if req.assigned_interpreter_id else None
            if interp and interp.telegram_id:
                r = pipeline.notifier.summary(s, req)
                when = r["start_time"].strftime("%H:%M") if r["start_time"] else "—"
                queue_chat(s, settings, interp.telegram_id,
                           f"Rappel / Reminder: {req.ref} demain / tomorrow {when} — {r['language_name']} — "
                           f"{r['location_name'] or '—'}", kind="reminder", dedupe=f"reminder:{req.id}:interpreter",
                           request_id=req.id)
            sent += 1
    return sent
