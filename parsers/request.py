"""Message → the structured request of SPEC.md §6 (the `biq-bot parse` contract).

One entry point per channel (`parse_email`, `parse_update`), both ending in `parse_text`, so that
email and chat go through exactly the same extractors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from . import entities, when
from .directory import Directory
from .form import form_fields
from .intent import find_ref, intent, listed_refs, only_ref, writing_language
from .mime import MailMessage, read_email
from .quotes import current_text, is_forward, is_reply
from .text import clean_typography, fold

MONTREAL = ZoneInfo("America/Montreal")
MAX_FIELD_TEXT = 12_000  # a request fits in far less; bounding it bounds the cost of a pathological body
MAX_QUOTE_TEXT = 60_000
SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|tr|fwd?|fw|aw|r|rep|réf|ref)\s*:\s*)+", re.I)


@dataclass
class ParsedRequest:
    """The parse contract, plus what the bot needs to explain itself (`problems`)."""

    intent: str = "other"
    ref: str | None = None
    language: str = "fr"
    appointments: list[when.Appointment] = field(default_factory=list)
    mode: str | None = None
    location: str | None = None
    source_language: str | None = None
    target_language: str | None = None
    interpreter_type: str | None = None
    preferred_interpreter: str | None = None
    notify_user: bool | None = None
    user_phone: str | None = None
    reason: str | None = None
    message_to_interpreter: str | None = None
    notes_to_coordinator: str | None = None
    address: str | None = None
    also_refs: list[str] = field(default_factory=list)  # "annuler BIQ-6400 et BIQ-6401": the others
    uncertain: list[str] = field(default_factory=list)
    text: str = ""  # the current text that was read (folded), for commands such as "activer les notifications"

    def as_contract(self) -> dict:
        return {
            "intent": self.intent,
            "ref": self.ref,
            "language": self.language,
            "appointments": [a.as_contract() for a in self.appointments],
            "mode": self.mode,
            "location": self.location,
            "source_language": self.source_language,
            "target_language": self.target_language,
            "interpreter_type": self.interpreter_type,
            "preferred_interpreter": self.preferred_interpreter,
            "notify_user": self.notify_user,
            "user_phone": self.user_phone,
            "reason": self.reason,
            "message_to_interpreter": self.message_to_interpreter,
            "notes_to_coordinator": self.notes_to_coordinator,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_contract(), ensure_ascii=False)


def local_date(moment: datetime | None) -> date:
    if moment is None:
        return datetime.now(MONTREAL).date()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=MONTREAL)
    return moment.astimezone(MONTREAL).date()


# "c'est bien en personne", "it's by video", "pas en vidéo : par téléphone": the mode stated as the answer
STATED_MODE = re.compile(r"\b(?:c'est|ce sera|ce serait|it's|it is|it will be|it'll be)\s+(?:bien\s+|plutot\s+|"
                         r"finalement\s+|actually\s+)?(?:en|par|by|in|via|sur)\s|\b(?:pas|not|non)\s+(?:en|par|by|in|via)"
                         r"\s+(?:personne|presentiel|video|visio|telephone|phone|person)\b")
# "Karim Aziz si possible" asks for him; "merci, Karim Aziz était super" does not
WANTED = re.compile(r"\b(?:si possible|if possible|de preference|preferablement|preferably|idealement|ideally|"
                    r"prioriser|prefere\w*|prefer\w*|souhait\w*|aimerai\w*|would like|same interpreter|meme interprete)\b")
WILL_BE = re.compile(r"\b(?:sera|seront|will be|it'll be|je confirme|i confirm|make it|plutot|rather|instead|"
                     r"finalement|modifier|changer|change|switch|passer)\b")


def parse_text(d: Directory, text: str, *, today: date, subject: str = "", sender_name: str = "",
               automatic: bool = False, reply: bool = False, language_hint: str = "") -> ParsedRequest:
    """Extract every field from the current text (quotes already removed)."""
    d.build()
    text = clean_typography(text[:MAX_FIELD_TEXT])
    folded = fold(text)
    subject_clean = SUBJECT_PREFIX.sub("", subject or "")
    subject_folded = fold(subject_clean)
    form = form_fields(text)
    out = ParsedRequest()
    out.language = writing_language(folded if folded.strip() else subject_folded, language_hint)
    out.ref = find_ref(fold(subject or ""), folded)

    day_first = out.language != "en"  # "12/8": 12 August in French, either in English
    appts, time_spans = when.appointments(folded, today, day_first)
    if not reply and subject_clean and all(a.date is None and a.start_time is None and not a.uncertain for a in appts):
        # "Objet : espagnol - 8 décembre 13h", the body only "Durée 1h": the subject says when
        in_subject, _ = when.appointments(subject_folded, today, day_first)
        if in_subject and appts and len(appts) == 1:
            for a in in_subject:
                if a.duration_minutes is None:
                    a.duration_minutes = appts[0].duration_minutes
        appts = in_subject or appts
    source, target, lang_mentions = entities.languages(d, text, folded, form)
    if not target and not reply and subject_clean:
        _, target, _ = entities.languages(d, subject_clean, subject_folded, {})
    loc, loc_mentions = entities.location(d, text, folded, form)
    claimed = time_spans + [(m.start, m.end) for m in lang_mentions] + [(m.start, m.end) for m in loc_mentions]

    out.appointments = appts
    out.source_language, out.target_language = source, target
    out.location = loc
    out.mode = entities.mode(folded, form, loc_mentions)
    out.interpreter_type = entities.interpreter_type(form, folded)
    out.preferred_interpreter = entities.preferred_interpreter(d, text, folded, form, sender_name)
    out.notify_user = entities.notify_user(form, folded)
    out.user_phone = entities.user_phone(form, text, folded)
    out.reason = entities.reason(text, folded, form, claimed)
    out.message_to_interpreter = entities.free_field(text, folded, form, "message_to_interpreter")
    out.notes_to_coordinator = entities.free_field(text, folded, form, "notes_to_coordinator")
    if "address" in form and form["address"][0]:
        out.address = form["address"][0]
    for a in appts:
        out.uncertain.extend(a.uncertain)

    has_details = bool(appts or target or loc)
    if (out.ref is not None or reply) and (out.mode or out.interpreter_type) \
            and (WILL_BE.search(folded) or STATED_MODE.search(folded)):
        has_details = True  # "ce sera en présentiel" changes the request it answers; "merci, l'appel
        # au téléphone s'est bien passé" does not
    if (out.ref is not None or reply) and (out.notify_user is not None or out.user_phone or (
            out.preferred_interpreter in d.interpreters and WANTED.search(folded))):
        has_details = True  # "pas besoin de l'aviser", "Karim Aziz si possible": the bot asked
    if reply and out.mode and len(folded.strip(" .!\n")) <= 30:
        has_details = True  # "En personne." alone answers "which mode?"
    out.intent = intent(folded, automatic=automatic, has_ref=out.ref is not None, is_reply=reply,
                        has_details=has_details, has_appointment=bool(appts), has_language=bool(target))
    if out.intent == "other" and not reply and not automatic and out.ref is not None and subject_folded:
        # "Annulation BIQ-5300" with "Merci" or nothing below: a new message's subject says it
        by_subject = intent(subject_folded, automatic=False, has_ref=True, is_reply=False, has_details=False)
        if by_subject in ("cancel", "status"):
            out.intent = by_subject
    if out.intent in ("other", "status"):
        out = ParsedRequest(intent=out.intent, ref=out.ref, language=out.language)
    if out.intent == "cancel":
        out.also_refs = [r for r in listed_refs(folded) if r != out.ref]
    out.text = (folded + "\n" + subject_folded).strip()
    return out


def parse_email(d: Directory, raw: bytes) -> tuple[ParsedRequest, MailMessage]:
    """Parse raw email bytes. Never raises: unreadable mail gives intent 'other'."""
    mail = read_email(raw)
    forward = is_forward(mail.subject, mail.text)
    reply = not forward and (is_reply(mail.subject) or bool(mail.in_reply_to))
    text = current_text(mail.text[:MAX_QUOTE_TEXT], mail.subject, mail.from_name)
    parsed = parse_text(d, text, today=local_date(mail.date), subject=mail.subject,
                        sender_name=mail.from_name, automatic=mail.is_automatic, reply=reply,
                        language_hint=mail.content_language)
    return parsed, mail


@dataclass
class ChatMessage:
    """The part of a Telegram Update the bot reads."""

    update_id: int | None
    chat_id: int | None
    user_id: int | None
    username: str
    name: str
    text: str
    date: datetime | None
    language_code: str
    replied_ref: str | None = None  # the reference in the bot's message this one answers (a swipe-reply)
    is_reply: bool = False


def _obj(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def read_update(data: object) -> ChatMessage:
    """The fields of a Bot API Update that matter; any malformed part reads as absent."""
    data = _obj(data)
    msg = _obj(data.get("message")) or _obj(data.get("edited_message"))
    frm = _obj(msg.get("from"))
    ts = msg.get("date")
    try:
        moment = datetime.fromtimestamp(ts, MONTREAL) if isinstance(ts, (int, float)) else None
    except (OverflowError, OSError, ValueError):
        moment = None
    text = msg.get("text") or msg.get("caption") or ""
    replied = _obj(msg.get("reply_to_message"))
    replied_text = replied.get("text") or replied.get("caption") or ""
    from_bot = _obj(replied.get("from")).get("is_bot") is True
    return ChatMessage(
        update_id=data.get("update_id") if isinstance(data.get("update_id"), int) else None,
        chat_id=_obj(msg.get("chat")).get("id"),
        user_id=frm.get("id"),
        username=str(frm.get("username") or ""),
        name=" ".join(str(p) for p in (frm.get("first_name"), frm.get("last_name")) if p),
        text=(text if isinstance(text, str) else "")[:20000],
        date=moment,
        language_code=str(frm.get("language_code") or ""),
        replied_ref=only_ref(fold(replied_text[:5000])) if from_bot and isinstance(replied_text, str) else None,
        is_reply=from_bot,
    )


def parse_update(d: Directory, data: object) -> tuple[ParsedRequest, ChatMessage]:
    chat = read_update(data)
    # answering one of the bot's messages is like answering its email: its reference is the subject's tag
    parsed = parse_text(d, chat.text, today=local_date(chat.date), sender_name=chat.name,
                        language_hint=chat.language_code, reply=chat.is_reply,
                        subject=f"[{chat.replied_ref}]" if chat.replied_ref else "")
    return parsed, chat
