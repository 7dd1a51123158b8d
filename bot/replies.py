"""Templated replies: render a kind of reply in the requester's language, then build the email.

Each template `templates/KIND.LANG.j2` is rendered twice from the same source: once as plain text
and once (under the name `html/KIND.LANG.j2`) as HTML with autoescaping, so the two alternatives
always say the same thing. Templates run in Jinja2's sandbox with StrictUndefined, and a folder
configured by the bank can override any of them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, time
from email import encoders
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
FR_DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
FR_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
             "octobre", "novembre", "décembre"]
EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
             "October", "November", "December"]
MODES = {"fr": {"in_person": "en présentiel", "phone": "par téléphone", "video": "en visioconférence"},
         "en": {"in_person": "in person", "phone": "by phone", "video": "by video"}}


def format_date(d: date | None, lang: str) -> str:
    if d is None:
        return ""
    if lang == "en":
        return f"{EN_DAYS[d.weekday()]}, {EN_MONTHS[d.month - 1]} {d.day}, {d.year}"
    day = "1er" if d.day == 1 else str(d.day)
    return f"{FR_DAYS[d.weekday()]} {day} {FR_MONTHS[d.month - 1]} {d.year}"


def format_time(t: time | None) -> str:
    return t.strftime("%H:%M") if t else ""


def one_line(value: object, limit: int = 300) -> str:
    """Header-safe text: no CR, LF or NUL can reach an outgoing header."""
    return " ".join(str(value or "").replace("\x00", " ").split())[:limit]


class _HtmlAlias(BaseLoader):
    """Serve 'html/NAME' from the same source as 'NAME' (autoescape decides by the prefix)."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment, template):  # noqa: ANN001, ANN201
        if template.startswith("html/"):
            return self.inner.get_source(environment, template[5:])
        raise TemplateNotFound(template)


def make_environment(override_dir: str | Path | None = None) -> SandboxedEnvironment:
    loaders: list[BaseLoader] = []
    if override_dir:
        loaders.append(FileSystemLoader(str(override_dir)))
    loaders.append(FileSystemLoader(str(BUILTIN_TEMPLATES)))
    base = ChoiceLoader(loaders)
    env = SandboxedEnvironment(loader=ChoiceLoader([_HtmlAlias(base), base]),
                               autoescape=lambda name: bool(name and name.startswith("html/")),
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True)
    env.filters["date_text"] = format_date
    env.filters["time_text"] = format_time
    env.filters["problem_texts"] = lambda codes, table: [table.get(c, c) for c in codes]
    env.filters["columns"] = lambda rows, keys: [[str(r.get(k, "")) for k in keys] for r in rows]
    env.globals["MODES"] = MODES
    return env


@dataclass
class Rendered:
    subject: str
    text: str
    html: str


def render(env: SandboxedEnvironment, kind: str, lang: str, **ctx: object) -> Rendered:
    lang = "en" if lang == "en" else "fr"
    name = f"{kind}.{lang}.j2"
    text_t = env.get_template(name)
    text = text_t.render(html=False, lang=lang, **ctx)
    module = text_t.make_module(dict(html=False, lang=lang, **ctx))
    html_body = env.get_template("html/" + name).render(html=True, lang=lang, **ctx)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    html = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>"
            f"<body style=\"font-family:sans-serif\">{html_body}</body></html>")
    return Rendered(one_line(getattr(module, "subject", "")), text, html)


@dataclass
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    ref: str | None = None
    lang: str = "fr"
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # filename, mime type, data


def message_id_for(ref: str | None, domain: str) -> str:
    """Our Message-IDs carry the reference, so a reply's In-Reply-To leads back to the request."""
    tag = ref.lower() if ref else "biq"
    return f"<{tag}.{uuid.uuid4().hex[:16]}@{domain}>"


def build_email(out: OutgoingEmail, *, from_addr: str, from_name: str, domain: str, now) -> tuple[bytes, str]:  # noqa: ANN001
    """The complete MIME message (text + HTML alternative, attachments) and its Message-ID.

    Built with the compat32 MIME classes: they are several times faster than EmailMessage's
    header registry, and every header value here is already made safe by `one_line` (no CR,
    LF or NUL) and encoded by `Header`, so nothing can be injected into the headers.
    """
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText(out.text, "plain", "utf-8"))
    alternative.attach(MIMEText(out.html, "html", "utf-8"))
    if out.attachments:
        msg = MIMEMultipart("mixed")
        msg.attach(alternative)
        for filename, mime, data in out.attachments:
            maintype, _, subtype = mime.partition("/")
            part = MIMEBase(maintype, subtype, **({"charset": "utf-8"} if maintype == "text" else {}))
            part.set_payload(data)
            encoders.encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=one_line(filename, 100))
            msg.attach(part)
    else:
        msg = alternative
    msg["From"] = formataddr((str(Header(one_line(from_name), "utf-8")), from_addr))
    msg["To"] = one_line(out.to)
    msg["Subject"] = readable_header(one_line(out.subject, 900))
    msg["Date"] = format_datetime(now)
    mid = message_id_for(out.ref, domain) if out.ref else make_msgid(domain=domain)
    msg["Message-ID"] = mid
    if out.in_reply_to and MSGID.fullmatch(out.in_reply_to.strip()):
        msg["In-Reply-To"] = out.in_reply_to.strip()
        refs = [r for r in out.references if MSGID.fullmatch(r)][-10:]
        if out.in_reply_to.strip() not in refs:
            refs.append(out.in_reply_to.strip())
        msg["References"] = " ".join(refs)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Content-Language"] = "en-CA" if out.lang == "en" else "fr-CA"
    return msg.as_bytes(policy=CRLF), mid


CRLF = compat32.clone(linesep="\r\n")


def readable_header(value: str) -> Header | str:
    """Keep the ASCII start ('[BIQ-000123] ') readable and encode only the rest (RFC 2047)."""
    if value.isascii():
        return value
    m = re.match(r"[\x20-\x7e]*\s", value)
    head = m.group() if m else ""
    h = Header()
    if head:
        h.append(head, "us-ascii")
    h.append(value[len(head):], "utf-8")
    return h


MSGID = re.compile(r"<[^<>\s]{1,400}>")


def sample_context(kind: str) -> dict:
    """Example data for previewing a template (fictional)."""
    from datetime import date as _date
    from datetime import time as _time
    r = dict(ref="BIQ-000123", status="submitted", date=_date(2026, 12, 3), start_time=_time(13, 30), duration=90,
             language_name="espagnol", location_name="CLSC de Parc-Extension", mode="in_person",
             interpreter_type="bi_rsss", preferred_name="María Fernanda López", preferred_note=None,
             has_user_phone=True, duplicate_of=None, interpreter_name="María Fernanda López", late=False)
    return {"r": r, "problems": ["missing_duration", "unclear_date"], "late": True, "late_hours": 48,
            "sender": "someone@example.org", "coordination": "coordination.biq@ssss.gouv.qc.ca", "ref": "BIQ-000123",
            "action": "cancel", "on": False, "code": "123456", "minutes": 15,
            "requests": [{"ref": "BIQ-000123", "date_fr": "jeudi 3 décembre 2026", "date_en": "Thursday, December 3, 2026",
                          "time": "13:30", "language_fr": "espagnol", "language_en": "Spanish",
                          "place": "CLSC de Parc-Extension", "status": "submitted",
                          "line_fr": "BIQ-000123 — jeudi 3 décembre 2026, 13:30 — espagnol — submitted",
                          "line_en": "BIQ-000123 — Thursday, December 3, 2026, 13:30 — Spanish — submitted"}]}


def template_kinds() -> list[str]:
    return sorted({p.name.split(".")[0] for p in BUILTIN_TEMPLATES.glob("*.j2") if not p.name.startswith("_")})
