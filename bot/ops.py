"""What operators ask: how deep are the queues (`status`), and is this configuration usable
(`check-config`), each answer in a sentence."""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass

from sqlalchemy import func, select, text

from store.db import Store, utcnow
from store.models import InboundMessage, Installation, Outbox, Request

from .config import Settings, load_settings
from .outbox import SmtpTarget, parse_target


def status(store: Store) -> dict:
    with store.session() as s:
        def n(model, *where) -> int:  # noqa: ANN001
            return s.scalar(select(func.count()).select_from(model).where(*where)) or 0

        oldest_in = s.scalar(select(func.min(InboundMessage.received_at)).where(InboundMessage.state == "new"))
        oldest_out = s.scalar(select(func.min(Outbox.created_at)).where(Outbox.state == "pending"))
        by_status = dict(s.execute(select(Request.status, func.count()).group_by(Request.status)).all())
        now = utcnow()
        return {
            "inbound_waiting": n(InboundMessage, InboundMessage.state == "new"),
            "inbound_quarantined": n(InboundMessage, InboundMessage.state == "quarantined"),
            "outbox_waiting": n(Outbox, Outbox.state == "pending"),
            "outbox_failed": n(Outbox, Outbox.state == "failed"),
            "oldest_inbound_waiting_seconds": round((now - oldest_in).total_seconds()) if oldest_in else None,
            "oldest_outbox_waiting_seconds": round((now - oldest_out).total_seconds()) if oldest_out else None,
            "requests_by_status": by_status,
        }


def wait_until_drained(store: Store, timeout: float, interval: float = 0.5) -> bool:
    """Wait until nothing is waiting: no inbound message to process, no reply to deliver."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        st = status(store)
        if not st["inbound_waiting"] and not st["outbox_waiting"]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def status_text(st: dict) -> str:
    def age(v: int | None) -> str:
        return "—" if v is None else (f"{v} s" if v < 120 else f"{v // 60} min")

    lines = [
        f"inbound waiting      {st['inbound_waiting']:6d}   oldest {age(st['oldest_inbound_waiting_seconds'])}",
        f"inbound quarantined  {st['inbound_quarantined']:6d}",
        f"outbox waiting       {st['outbox_waiting']:6d}   oldest {age(st['oldest_outbox_waiting_seconds'])}",
        f"outbox failed        {st['outbox_failed']:6d}",
        "requests by status   " + (", ".join(f"{k} {v}" for k, v in sorted(st["requests_by_status"].items())) or "none"),
    ]
    return "\n".join(lines)


@dataclass
class Check:
    name: str
    ok: bool
    sentence: str


TOKEN = re.compile(r"^\d{5,}:[A-Za-z0-9_-]{30,}$")


def check_config(path: str | None = None) -> list[Check]:
    """Every check says what it found, or what is wrong and what to do, in one sentence."""
    checks: list[Check] = []
    try:
        settings = load_settings(path)
    except ValueError as exc:
        return [Check("configuration", False, str(exc))]
    checks.append(Check("configuration", True, "settings read" + (f" from {path}" if path else "")))
    checks.append(_check_store(settings))
    checks.append(_check_outbound(settings))
    if settings.imap_url:
        checks.append(_check_imap(settings))
    if settings.telegram_token:
        ok = bool(TOKEN.match(settings.telegram_token))
        checks.append(Check("telegram", ok, "token has the Bot API format" if ok else
                            "BIQ_TELEGRAM_TOKEN does not look like a Bot API token (digits, a colon, then 30+ characters)"))
    return checks


def _check_store(settings: Settings) -> Check:
    try:
        store = Store(settings.database_url, busy_timeout=3)
        with store.engine.connect() as c:
            c.execute(text("SELECT 1"))
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        from store.db import MIGRATIONS
        with store.engine.connect() as c:
            current = MigrationContext.configure(c).get_current_revision()
        from alembic.config import Config
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        if current != head:
            return Check("store", False, f"the store is reachable but at schema {current or 'none'} instead of {head}: "
                                         "run `biq-bot init`")
        with store.session() as s:
            sites = s.scalar(select(func.count()).select_from(Installation)) or 0
        store.dispose()
        if not sites:
            return Check("directory", False, "the store has no installations: run `biq-bot directory load DIR`")
        return Check("store", True, f"store reachable, schema {head}, {sites} installations in the directory")
    except Exception as exc:  # noqa: BLE001 - any failure becomes the sentence
        return Check("store", False, f"cannot use the store {settings.database_url.split('@')[-1]}: "
                                     f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def _check_outbound(settings: Settings) -> Check:
    target = parse_target(settings)
    if not isinstance(target, SmtpTarget):
        return Check("outbound", True, f"replies are written to the folder {target}")
    try:  # as the sender connects: TLS when offered, and the certificate checked (smtplib's own default is not)
        tls = ssl.create_default_context()
        with (smtplib.SMTP_SSL(target.host, target.port, timeout=5, context=tls) if target.tls
              else smtplib.SMTP(target.host, target.port, timeout=5)) as c:
            c.ehlo()
            if not target.tls and (target.starttls or (target.starttls is None and c.has_extn("starttls"))):
                c.starttls(context=tls)
                c.ehlo()
            if target.user:
                c.login(target.user, target.password)
        return Check("outbound", True, f"relay {target.host}:{target.port} answers")
    except (OSError, smtplib.SMTPException) as exc:
        return Check("outbound", False, f"the relay {target.host}:{target.port} cannot be used ({type(exc).__name__}): "
                                        "check BIQ_OUTBOUND, or replies will wait in the outbox")


def _check_imap(settings: Settings) -> Check:
    from imapclient import IMAPClient

    from .imap_reader import parse_imap_url
    try:
        t = parse_imap_url(settings.imap_url, settings.imap_password)
        with IMAPClient(t.host, port=t.port, ssl=t.tls, timeout=5) as c:
            c.login(t.user, t.password)
            c.select_folder(t.folder, readonly=True)
        return Check("imap", True, f"mailbox {t.user}@{t.host}/{t.folder} opens")
    except (TimeoutError, ValueError, OSError, Exception) as exc:  # noqa: BLE001
        return Check("imap", False, f"the IMAP mailbox cannot be opened ({type(exc).__name__}): check BIQ_IMAP_URL "
                                    "and BIQ_IMAP_PASSWORD")
