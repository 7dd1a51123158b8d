"""Templated replies: render a kind of reply in the requester's language, then build the email.

Each template `templates/KIND.LANG.j2` is rendered twice from the same source: once as plain text
and once (under the name `html/KIND.LANG.j2`) as HTML with autoescaping, so the two alternatives
always say the same thing. Templates run in Jinja2's sandbox with StrictUndefined, and a folder
configured by the bank can override any of them.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, time
from email.charset import Charset
from email.header import Header
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
    """Serve 'html/NAME' from the same source as 'NAME', with `html` set (autoescape decides by
    the prefix; the macros read `html` from their own module, imported without context)."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment, template):  # noqa: ANN001, ANN201
        if template.startswith("html/"):
            source, filename, uptodate = self.inner.get_source(environment, template[5:])
            return "{% set html = true %}" + source, filename, uptodate
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
                               keep_trailing_newline=True, auto_reload=False)
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
    module = env.get_template(name).make_module(dict(html=False, lang=lang, **ctx))
    text = str(module)  # one rendering gives both the body and the exported `subject`
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

    The layout is always the same, so it is written directly: every part is base64 (which can
    never contain the random boundary), every header value has been through `one_line` (no CR,
    LF or NUL) and any non-ASCII one is RFC 2047-encoded by `email.header.Header`. The email
    package's generator took three times longer than everything else in a reply; the tests
    read these messages back with the email package.
    """
    mid = message_id_for(out.ref, domain) if out.ref else make_msgid(domain=domain)
    headers = [("From", formataddr((one_line(from_name), from_addr))),
               ("To", one_line(out.to)),
               ("Subject", _subject(one_line(out.subject, 900))),
               ("Date", format_datetime(now)),
               ("Message-ID", mid)]
    if out.in_reply_to and MSGID.fullmatch(out.in_reply_to.strip()):
        refs = [r for r in out.references if MSGID.fullmatch(r)][-10:]
        if out.in_reply_to.strip() not in refs:
            refs.append(out.in_reply_to.strip())
        headers += [("In-Reply-To", out.in_reply_to.strip()), ("References", "\r\n ".join(refs))]
    headers += [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All"),
                ("Content-Language", "en-CA" if out.lang == "en" else "fr-CA"), ("MIME-Version", "1.0")]
    body = _multipart("alternative", [_part("text/plain; charset=\"utf-8\"", out.text.encode()),
                                      _part("text/html; charset=\"utf-8\"", out.html.encode())])
    if out.attachments:
        parts = [body]
        for filename, mime, data in out.attachments:
            name = one_line(filename, 100).replace("\\", "_").replace('"', "_")
            ctype = mime + ('; charset="utf-8"' if mime.startswith("text/") else "")
            parts.append(_part(ctype, data, f'Content-Disposition: attachment; filename="{name}"\r\n'))
        body = _multipart("mixed", parts)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("ascii") + body, mid


def _part(content_type: str, data: bytes, extra: str = "") -> bytes:
    return (f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n{extra}\r\n".encode()
            + base64.encodebytes(data).replace(b"\n", b"\r\n"))


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    boundary = f"=_biq_{uuid.uuid4().hex}"  # '_' is not base64: no part can contain it
    sep = f"--{boundary}\r\n".encode()
    return (f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
            + b"".join(sep + p for p in parts) + f"--{boundary}--\r\n".encode())


def _subject(value: str) -> str:
    """The Subject header's value: RFC 2047 if it is not plain ASCII, keeping the ASCII start
    ('[BIQ-000123] ') readable; lines of at most 76 characters with "Subject: " (RFC 2047)."""
    if value.isascii():
        return value
    m = re.match(r"[\x20-\x7e]*\s", value)
    head = m.group() if m else ""
    word = _UTF8.header_encode(value[len(head):])
    # One encoded word that fits on the line (most replies): what `Header` writes, ten times
    # faster. Longer values are split into several words and folded by `Header`.
    if len("Subject: ") + len(head) + len(word) <= 76:
        return head + word
    h = Header(header_name="Subject", maxlinelen=76)
    if head:
        h.append(head, "us-ascii")
    h.append(value[len(head):], "utf-8")
    return h.encode(linesep="\r\n")


_UTF8 = Charset("utf-8")
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
            "action": "cancel", "on": False, "stated": False, "code": "123456", "minutes": 15,
            "requests": [{"ref": "BIQ-000123", "date_fr": "jeudi 3 décembre 2026", "date_en": "Thursday, December 3, 2026",
                          "time": "13:30", "language_fr": "espagnol", "language_en": "Spanish",
                          "place": "CLSC de Parc-Extension", "status": "submitted",
                          "line_fr": "BIQ-000123 — jeudi 3 décembre 2026, 13:30 — espagnol — submitted",
                          "line_en": "BIQ-000123 — Thursday, December 3, 2026, 13:30 — Spanish — submitted"}]}


def template_kinds() -> list[str]:
    return sorted({p.name.split(".")[0] for p in BUILTIN_TEMPLATES.glob("*.j2") if not p.name.startswith("_")})
