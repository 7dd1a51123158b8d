"""Billing per establishment for one month (rule 8): completed interpreting, late cancellations
(billed as if they took place) and communications made at the requester's demand (always billed)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Communication, Installation, Request

NO_SITE = "(sans installation / no installation)"


@dataclass
class BillingLine:
    establishment: str
    completed: int = 0
    completed_minutes: int = 0
    late_cancellations: int = 0
    late_minutes: int = 0
    communications: int = 0
    communication_minutes: int = 0

    @property
    def billable_hours(self) -> float:
        return round((self.completed_minutes + self.late_minutes + self.communication_minutes) / 60, 2)


def month_bounds(month: str) -> tuple[date, date]:
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = date(year, mon, 1)
    except ValueError as exc:
        raise ValueError(f"month must be YYYY-MM, not {month!r}") from exc
    end = date(year + (mon == 12), mon % 12 + 1, 1)
    return start, end


def billing(session: Session, month: str) -> list[BillingLine]:
    start, end = month_bounds(month)
    sites = {i.id: i.establishment or i.name for i in session.scalars(select(Installation))}
    lines: dict[str, BillingLine] = {}

    def line(req: Request) -> BillingLine:
        name = sites.get(req.location_id, NO_SITE) if req.location_id else NO_SITE
        return lines.setdefault(name, BillingLine(name))

    in_month = (Request.date >= start, Request.date < end)
    for req in session.scalars(select(Request).where(*in_month, Request.status == "completed")):
        ln = line(req)
        ln.completed += 1
        ln.completed_minutes += req.duration_minutes or 0
    for req in session.scalars(select(Request).where(*in_month, Request.status == "cancelled",
                                                     Request.late_cancellation)):
        ln = line(req)
        ln.late_cancellations += 1
        ln.late_minutes += req.duration_minutes or 0
    q = select(Communication, Request).join(Request, Communication.request_id == Request.id).where(*in_month)
    for comm, req in session.execute(q):
        ln = line(req)
        ln.communications += 1
        ln.communication_minutes += comm.minutes
    return sorted(lines.values(), key=lambda x: x.establishment)


HEADER = ["establishment", "completed", "completed_hours", "late_cancellations", "late_cancellation_hours",
          "communications", "communication_minutes", "billable_hours"]


def rows(lines: list[BillingLine]) -> list[list]:
    return [[ln.establishment, ln.completed, round(ln.completed_minutes / 60, 2), ln.late_cancellations,
             round(ln.late_minutes / 60, 2), ln.communications, ln.communication_minutes, ln.billable_hours]
            for ln in lines]


def as_csv(lines: list[BillingLine]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(rows(lines))
    return buf.getvalue()


def as_table(lines: list[BillingLine], month: str) -> str:
    if not lines:
        return f"billing {month}: nothing billable"
    head = f"{'establishment':58} {'done':>5} {'h':>6} {'late':>5} {'h':>6} {'comm':>5} {'min':>5} {'billable h':>10}"
    out = [f"billing {month}", head]
    for r in rows(lines):
        out.append(f"{r[0][:58]:58} {r[1]:5d} {r[2]:6.2f} {r[3]:5d} {r[4]:6.2f} {r[5]:5d} {r[6]:5d} {r[7]:10.2f}")
    return "\n".join(out)
