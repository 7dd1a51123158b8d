"""The request rules of SPEC.md §3, in one place, for every channel.

`check` returns problem codes; the templates turn each code into a sentence that says what is
wrong and how to fix it. An empty list means the request can be submitted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from store.models import Request

REQUIRED = ("target_language", "date", "start_time", "duration_minutes", "mode", "location_id")
MIN_DURATION, MAX_DURATION = 15, 8 * 60
MAX_AHEAD = timedelta(days=366)


def check(req: Request, *, now: datetime, tz: ZoneInfo, unclear: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Problem codes for *req*, in the order a person would fix them."""
    problems: list[str] = []
    for field in REQUIRED:
        if getattr(req, field) is None:
            key = {"duration_minutes": "duration", "start_time": "time", "location_id": "location"}.get(field, field)
            problems.append(f"unclear_{key}" if key in unclear else f"missing_{key}")
    if req.target_language and req.target_language == (req.source_language or "fr"):
        problems.append("same_language")
    if req.date and req.start_time:
        start = datetime.combine(req.date, req.start_time, tz)
        if start <= now:
            problems.append("in_the_past")
        elif start > now + MAX_AHEAD:
            problems.append("too_far_ahead")
    if req.interpreter_type == "bi_rsss" and not (req.preferred_interpreter_id or req.preferred_interpreter_name):
        problems.append("bi_rsss_without_interpreter")
    if req.notify_user and not req.user_phone:
        problems.append("notify_without_phone")
    if req.duration_minutes is not None and not (MIN_DURATION <= req.duration_minutes <= MAX_DURATION):
        problems.append("duration_out_of_range")
    return problems


def starts_at(req: Request, tz: ZoneInfo) -> datetime | None:
    if req.date is None or req.start_time is None:
        return None
    return datetime.combine(req.date, req.start_time, tz)


def is_late_cancellation(req: Request, *, now: datetime, tz: ZoneInfo, hours: int = 48) -> bool:
    """Rule 8: a confirmed request cancelled less than *hours* before it starts is billed."""
    start = starts_at(req, tz)
    return req.status == "confirmed" and start is not None and start - now < timedelta(hours=hours)
