"""Load the bank's directory export (CSV files) into the store, and read it back for the parser.

Loading is an idempotent upsert that reports what it added, changed and deactivated; requesters
are never deleted (their requests keep their history), only marked inactive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from parsers.directory import Directory

from . import models as m


@dataclass
class LoadReport:
    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    deactivated: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, table: str) -> None:
        bucket = getattr(self, kind)
        bucket[table] = bucket.get(table, 0) + 1

    def lines(self) -> list[str]:
        tables = sorted(set(self.added) | set(self.changed) | set(self.deactivated))
        if not tables:
            return ["directory unchanged"]
        return [f"{t}: {self.added.get(t, 0)} added, {self.changed.get(t, 0)} changed, "
                f"{self.deactivated.get(t, 0)} deactivated" for t in tables]


def _apply(obj: object, values: dict, report: LoadReport, table: str) -> None:
    changed = False
    for k, v in values.items():
        if getattr(obj, k) != v:
            setattr(obj, k, v)
            changed = True
    if changed:
        report.count("changed", table)


def _upsert(session: Session, model: type, key: str, report: LoadReport, table: str, rows: dict[str, dict]) -> None:
    """Add or update every row of the export; rows missing from it are deactivated (never deleted)."""
    existing = {getattr(r, key): r for r in session.scalars(select(model))}
    for k, values in rows.items():
        if k in existing:
            _apply(existing[k], values, report, table)
        else:
            session.add(model(**{key: k}, **values))
            report.count("added", table)
    if not hasattr(model, "active"):
        return
    for k, row in existing.items():
        if k not in rows and row.active:
            row.active = False
            report.count("deactivated", table)


def load_directory(session: Session, folder: str | Path) -> LoadReport:
    """Upsert every table of the CSV folder; entries absent from it are deactivated."""
    folder = Path(folder)
    if not (folder / "installations.csv").exists():
        raise FileNotFoundError(f"{folder}: no installations.csv (not a directory export)")
    d = Directory.from_folder(folder)
    report = LoadReport()

    _upsert(session, m.Installation, "id", report, "installations", {
        i.id: dict(name=i.name, aliases=";".join(i.aliases), address=i.address, establishment=i.establishment,
                   active=True) for i in d.installations.values()})
    _upsert(session, m.Language, "code", report, "languages", {
        lg.code: dict(name_fr=lg.name_fr, name_en=lg.name_en, aliases=";".join(lg.aliases))
        for lg in d.languages.values()})
    _upsert(session, m.Interpreter, "id", report, "interpreters", {
        it.id: dict(name=it.name, languages=";".join(it.languages), email=it.email, telegram_id=it.telegram_id,
                    active=True) for it in d.interpreters.values()})
    session.flush()

    existing_req = {r.email: r for r in session.scalars(select(m.Requester))}
    # An address that disappears while a new one appears for the same person (same name and
    # installations) is an email change: the requester keeps their id, requests and history.
    gone = {r.email: r for r in existing_req.values() if r.email not in d.requesters}
    for rq in d.requesters.values():
        if rq.email in existing_req:
            continue
        same = [r for r in gone.values() if r.name.strip().lower() == rq.name.strip().lower()
                and sorted(i.id for i in r.installations) == sorted(rq.installations)]
        if len(same) == 1:
            old = same[0]
            del gone[old.email]
            del existing_req[old.email]
            old.email = rq.email
            existing_req[rq.email] = old
            report.count("changed", "requesters")
    for rq in d.requesters.values():
        insts = [session.get(m.Installation, i) for i in rq.installations]
        insts = [i for i in insts if i is not None]
        generic = "générique" in rq.name.lower() or "generique" in rq.name.lower() or "generic" in rq.name.lower()
        values = dict(name=rq.name, role=rq.role, generic=generic, active=True)
        row = existing_req.get(rq.email)
        if row is None:
            row = m.Requester(email=rq.email, notifications=rq.notifications, **values)
            row.installations = insts
            session.add(row)
            report.count("added", "requesters")
        else:
            _apply(row, values, report, "requesters")
            if sorted(i.id for i in row.installations) != sorted(i.id for i in insts):
                row.installations = insts
                report.count("changed", "requesters")
    for email, row in existing_req.items():
        if email not in d.requesters and row.active:
            row.active = False
            report.count("deactivated", "requesters")

    _upsert(session, m.Staff, "telegram_id", report, "staff", {
        st.telegram_id: dict(name=st.name, email=st.email, role=st.role, active=True) for st in d.staff.values()})
    session.flush()
    return report


def directory_from_store(session: Session) -> Directory:
    """The parser's view of the directory, read from the store (active entries only)."""
    from parsers import directory as pd

    d = Directory()
    for i in session.scalars(select(m.Installation).where(m.Installation.active)):
        d.installations[i.id] = pd.Installation(i.id, i.name, _split(i.aliases), i.address, i.establishment)
    for it in session.scalars(select(m.Interpreter).where(m.Interpreter.active)):
        d.interpreters[it.id] = pd.Interpreter(it.id, it.name, _split(it.languages), it.email, it.telegram_id)
    for lg in session.scalars(select(m.Language)):
        d.languages[lg.code] = pd.Language(lg.code, lg.name_fr, lg.name_en, _split(lg.aliases))
    for r in session.scalars(select(m.Requester).where(m.Requester.active)):
        d.requesters[r.email] = pd.Requester(r.email, r.name, [i.id for i in r.installations], r.notifications, r.role)
    for s in session.scalars(select(m.Staff).where(m.Staff.active)):
        d.staff[s.telegram_id] = pd.Staff(s.telegram_id, s.name, s.email, s.role)
    return d.build()


def is_empty(session: Session) -> bool:
    return session.scalar(select(m.Installation.id).limit(1)) is None


def _split(value: str) -> list[str]:
    return [p for p in (value or "").split(";") if p]
