"""Raw email bytes → the few things biq-bot needs, without ever raising.

Real mail is broken in every possible way (unknown charsets, missing boundaries, headers that
the stdlib's strict policy refuses). Every step here falls back to something readable, and
records what it could not do in `defects` so that the pipeline can log a clear reason.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message

from bs4 import BeautifulSoup

MAX_TEXT = 200_000  # characters of body text kept for parsing; more is never a request


AUTO_SUBJECT = re.compile(r"^\s*(?:automatic reply|auto(?:matic)?[- ]?reply|autoreply|auto-response|"
                          r"r[ée]ponse automatique|out of (?:the )?office|absent du bureau|absence du bureau|"
                          r"message d'absence)\s*:", re.I)  # "Automatic reply: <their subject>"


# a list manager's addresses (Mailman's -owner, -request, -bounces; fml's -admin) and its headers
LIST_ROBOT_SUFFIXES = ("-owner", "-request", "-bounces", "-bounce", "-admin")
LIST_HEADERS = ("x-loop", "x-mlserver", "x-ml-name", "x-mailing-list", "list-post", "list-unsubscribe", "list-help")


@dataclass
class MailMessage:
    """What the parser and the pipeline read from one email."""

    from_addr: str = ""
    from_name: str = ""
    to: list[str] = field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    return_path: str | None = None
    auto_submitted: str = ""
    precedence: str = ""
    list_id: str = ""
    content_language: str = ""
    text: str = ""
    html_only: bool = False
    attachments: list[str] = field(default_factory=list)
    is_report: bool = False
    dsn_status: str = ""  # e.g. "5.1.1" from a delivery-status report
    defects: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_automatic(self) -> bool:
        """True for messages that must never be answered (RFC 3834, bounces, lists)."""
        return bool(self.automatic_reason)

    @property
    def automatic_reason(self) -> str:
        if self.auto_submitted and self.auto_submitted.lower() != "no":
            return f"Auto-Submitted: {self.auto_submitted}"
        if self.precedence.lower() in ("bulk", "junk", "list", "auto_reply"):
            return f"Precedence: {self.precedence}"
        if self.list_id:
            return "List-Id"
        if self.return_path is not None and self.return_path.strip() in ("", "<>"):
            return "null return path"
        local = self.from_addr.split("@")[0].lower()
        if not self.from_addr or local in ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply",
                                           "do-not-reply", "bounce", "bounces", "majordomo", "listserv", "mailman") \
                or local.startswith("owner-") or local.endswith(LIST_ROBOT_SUFFIXES):
            return f"automatic sender {self.from_addr or '(none)'}"
        for h in LIST_HEADERS:  # a mailing list's robots and its copies: answering one starts a loop
            if self.headers.get(h):
                return h
        if self.is_report:
            return "delivery or feedback report"
        if AUTO_SUBJECT.match(self.subject or ""):
            return "auto-reply subject"  # out-of-office replies of servers that set no header
        for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
            v = self.headers.get(h.lower(), "")
            if h == "X-Auto-Response-Suppress":
                continue
            if v:
                return h
        return ""


def header_text(raw: object) -> str:
    """Decode an RFC 2047 header to text, whatever the charset; strip CR/LF and NULs."""
    if raw is None:
        return ""
    s = str(raw)
    try:
        if "=?" in s:
            s = str(make_header(decode_header(s)))
    except Exception:  # noqa: BLE001 - unknown charset or broken encoded-word: keep it raw
        pass
    return " ".join(s.replace("\x00", "").split())


def _safe_header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - the default policy can raise while parsing addresses
        value = None
        for k, v in msg.raw_items() if hasattr(msg, "raw_items") else msg.items():
            if k.lower() == name.lower():
                value = v
                break
    return header_text(value)


def _raw_header(msg: Message, name: str) -> str:
    """The header as received (encoded-words left alone), unfolded, without NULs."""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001
        value = None
    return " ".join(str(value or "").replace("\x00", "").split())


def decode_part(part: Message) -> str:
    """Text of a MIME part; unknown charsets fall back to UTF-8, then Latin-1."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = (part.get_content_charset() or "utf-8").lower().strip('"')
    aliases = {"x-unknown": "utf-8", "unknown-8bit": "utf-8", "x-gbk": "gbk",
               "ks_c_5601-1987": "cp949", "windows-874": "cp874", "x-mac-cyrillic": "mac_cyrillic"}
    charset = aliases.get(charset, charset)
    for enc in (charset, "utf-8"):
        try:
            return payload.decode(enc)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return payload.decode("latin-1")


def unflow(text: str, delsp: bool = False) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676)."""
    out: list[str] = []
    buf = ""
    for line in text.split("\n"):
        if line == "-- ":
            if buf:
                out.append(buf)
                buf = ""
            out.append(line)
            continue
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and not line.startswith(">"):
            buf += line[:-1] if delsp else line
        else:
            out.append(buf + line)
            buf = ""
    if buf:
        out.append(buf)
    return "\n".join(out)


BLOCK = re.compile(r"<(?:/?(?:p|div|br|tr|li|h[1-6]|table|ul|ol|pre|section|article|header|footer)\b)[^>]*>", re.I)
CELL_END = re.compile(r"</t[dh]\s*>", re.I)
HR = re.compile(r"<hr\b[^>]*>", re.I)
QUOTE_OPEN = re.compile(r"<blockquote\b[^>]*>", re.I)
QUOTE_CLOSE = re.compile(r"</blockquote\s*>", re.I)
DROP = re.compile(r"<(style|script|head|title)\b.*?</\1\s*>", re.I | re.S)


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: one line per block, table cells joined by ' : ',
    quoted blocks prefixed with '> '. Block boundaries are marked with linear regex passes, so
    pathological nesting costs no more than its size; BeautifulSoup only extracts the text."""
    html = html[:2_000_000]
    html = DROP.sub(" ", html)
    html = HR.sub("\n________________________________\n", html)
    html = QUOTE_OPEN.sub("\n\x1e", html)
    html = QUOTE_CLOSE.sub("\x1d\n", html)
    html = CELL_END.sub("\x1f", html)
    html = BLOCK.sub("\n", html)
    try:
        text = BeautifulSoup(html, "html.parser").get_text()
    except Exception:  # noqa: BLE001 - pathological markup: strip the tags ourselves
        text = re.sub(r"<[^>]*>", " ", html)
    out: list[str] = []
    depth = 0
    for raw in text.replace("\u00a0", " ").split("\n"):
        opens, closes = raw.count("\x1e"), raw.count("\x1d")
        cells = [" ".join(c.split()) for c in raw.replace("\x1e", "").replace("\x1d", "").split("\x1f")]
        line = " : ".join(c.rstrip(" :") for c in cells if c)
        depth += opens
        if line:
            out.append(("> " if depth > 0 else "") + line)
        elif out and out[-1]:
            out.append("")
        depth = max(0, depth - closes)
    return "\n".join(out).strip()


def read_email(raw: bytes) -> MailMessage:
    """Parse raw bytes into a `MailMessage`. Never raises."""
    try:
        return _read_email(raw)
    except (RecursionError, MemoryError, Exception) as exc:  # noqa: BLE001 - last line of defence
        m = MailMessage()
        m.defects.append(f"unreadable MIME structure: {type(exc).__name__}")
        return m


def _read_email(raw: bytes) -> MailMessage:
    m = MailMessage()
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as exc:  # noqa: BLE001
        m.defects.append(f"unparseable message: {type(exc).__name__}")
        return m
    for k, v in msg.items():  # kept raw: only the few headers read below are decoded
        m.headers.setdefault(k.lower(), str(v)[:500])
    # Addresses are parsed from the raw header, and only then is the display name decoded:
    # decoding first would let an encoded-word in the name smuggle in another address.
    name, addr = email.utils.parseaddr(_raw_header(msg, "From"))
    m.from_name, m.from_addr = header_text(name).strip(), addr.strip().lower()
    if any(c in m.from_addr for c in "\r\n\x00 <>\"") or m.from_addr.count("@") != 1:
        m.defects.append("unusable From address")
        m.from_addr = ""
    m.to = [a.lower() for _, a in email.utils.getaddresses([_raw_header(msg, "To"), _raw_header(msg, "Cc")]) if a]
    m.subject = _safe_header(msg, "Subject")[:998]
    try:
        d = email.utils.parsedate_to_datetime(_safe_header(msg, "Date"))
        m.date = d if d.tzinfo else None
    except Exception:  # noqa: BLE001
        m.date = None
    m.message_id = _safe_header(msg, "Message-ID")[:500]
    m.in_reply_to = _safe_header(msg, "In-Reply-To")[:500]
    m.references = _safe_header(msg, "References").split()[:50]
    rp = msg.get("Return-Path")
    m.return_path = header_text(rp) if rp is not None else None
    m.auto_submitted = _safe_header(msg, "Auto-Submitted")
    m.precedence = _safe_header(msg, "Precedence")
    m.list_id = _safe_header(msg, "List-Id")
    m.content_language = _safe_header(msg, "Content-Language")
    ctype = msg.get_content_type()
    m.is_report = ctype in ("multipart/report", "message/delivery-status", "message/feedback-report")

    plain_parts: list[str] = []
    html_parts: list[str] = []
    for count, (part, attached) in enumerate(_walk(msg)):
        if count > 500:
            m.defects.append("too many MIME parts; the rest was ignored")
            break
        ct = part.get_content_type()
        if ct in ("multipart/report", "message/delivery-status", "message/feedback-report"):
            m.is_report = m.is_report or not attached
            if ct == "message/delivery-status" and not m.dsn_status:
                m.dsn_status = _dsn_status(part)
            continue
        if part.is_multipart() or attached:
            continue
        disposition = str(part.get("Content-Disposition") or "").lower()
        if disposition.startswith("attachment") or ct not in ("text/plain", "text/html"):
            m.attachments.append(header_text(part.get_filename()) or ct)
            continue
        text = decode_part(part)
        if ct == "text/html":
            html_parts.append(text)
        else:
            params = {str(k).lower(): str(v or "").lower() for k, v in part.get_params() or []}
            if params.get("format") == "flowed":
                text = unflow(text.replace("\r\n", "\n"), params.get("delsp") == "yes")
            plain_parts.append(text)
    if plain_parts:
        m.text = "\n\n".join(plain_parts)
    elif html_parts:
        m.html_only = True
        m.text = "\n\n".join(html_to_text(h) for h in html_parts)
    m.text = m.text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")[:MAX_TEXT]
    return m


DSN_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})")
DSN_STATUS_LINE = re.compile(rb"^Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.M | re.I)


def _dsn_status(part: Message) -> str:
    """The first recipient's status code ('5.1.1') in a message/delivery-status part.

    The stdlib parses that part into one header block per recipient: their Status headers are
    read directly (writing the blocks back out to search them cost more than the rest of the
    message). When none has one (a malformed block leaves it in a body), the part is written
    out and searched as text."""
    payload = part.get_payload()
    if isinstance(payload, list):
        for block in payload:
            found = DSN_STATUS.match(str(block.get("Status") or "")) if isinstance(block, Message) else None
            if found:
                return found.group(1)
        raw = b"\n".join(p.as_bytes() if isinstance(p, Message) else bytes(str(p), "utf-8", "replace")
                         for p in payload)
    else:
        raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else b""
    found = DSN_STATUS_LINE.search(raw)
    return found.group(1).decode() if found else ""


def _walk(node: Message, attached: bool = False, depth: int = 0):
    """Every part with a flag telling whether it lies inside an attached message/rfc822."""
    yield node, attached
    if depth > 50:
        return
    try:
        payload = node.get_payload()
    except Exception:  # noqa: BLE001
        return
    if not isinstance(payload, list):
        return
    inner = attached or node.get_content_type() == "message/rfc822"
    for child in payload:
        if isinstance(child, Message):
            yield from _walk(child, inner, depth + 1)
