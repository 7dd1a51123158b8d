"""What each chat command does, independent of Telegram's library (the adapter is telegram_bot.py).

`ChatCommands.handle` takes who sent it (user and chat ids), the command and its argument text,
and returns the answer to show. Everything a command changes happens in one transaction that
also records the Telegram update id, so a re-delivered update is never executed twice. Who may
run what: staff (by Telegram id, from the directory) run the workflow; interpreters accept or
decline what was offered to them; linked requesters see and cancel their own requests.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import shlex
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz, process
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parsers.intent import REF_TEXT
from parsers.text import fold
from store.db import Store, utcnow
from store.models import (
    AuditEntry,
    CallbackToken,
    InboundMessage,
    Interpreter,
    LinkCode,
    Request,
    Requester,
    Staff,
)

from . import workflow
from .notify import Origin
from .pipeline import Pipeline
from .workflow import Actor, WorkflowError

log = logging.getLogger("biq.chat")
STAFF_COMMANDS = {"pending", "show", "offer", "accept", "decline", "cancel", "complete", "unfilled", "comm", "search"}
CODE_ATTEMPTS = 5
CODES_PER_HOUR = 3
CALLBACK_TTL = timedelta(days=7)


@dataclass
class Answer:
    text: str
    keyboard: list[list[tuple[str, str]]] = field(default_factory=list)  # rows of (label, callback data)
    ok: bool = True  # False when the command was refused (not allowed, not found, bad arguments)


class Duplicate(Exception):
    """This Telegram update was already handled."""


def parse_ref(text: str) -> int | None:
    """'BIQ-000123', 'biq 123', '#123' or a bare number → 123."""
    t = fold(text.strip())
    if re.fullmatch(r"\d{1,9}", t):
        return int(t)
    m = REF_TEXT.search(t)
    if m:
        return int(next(g for g in m.groups() if g))
    return None


def split_args(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


class ChatCommands:
    def __init__(self, store: Store, pipeline: Pipeline) -> None:
        self.store = store
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.tz = ZoneInfo(self.settings.timezone)

    # ---- entry points -------------------------------------------------------------------------------
    def handle(self, *, update_id: int | None, user_id: int, chat_id: int, command: str, args: str,
               lang: str = "fr") -> Answer:
        command = command.lower().lstrip("/").split("@")[0]
        try:
            with self.store.session() as s:
                self._claim_update(s, update_id)
                return self._dispatch(s, str(user_id), str(chat_id), command, args, lang)
        except Duplicate:
            return Answer("")
        except WorkflowError as exc:
            return Answer(str(exc), ok=False)

    def run_as(self, actor: Actor, command: str, args: str) -> Answer:
        """A staff command from another channel (the command line), in its own transaction."""
        try:
            with self.store.session() as s:
                return self._staff(s, actor, "", command, args)
        except WorkflowError as exc:
            return Answer(str(exc), ok=False)

    def callback(self, *, update_id: int | None, user_id: int, chat_id: int, data: str) -> Answer:
        """An inline button: the token must exist, be unused and unexpired, and belong to this user."""
        token = data[3:] if data.startswith("cb:") else ""
        try:
            with self.store.session() as s:
                self._claim_update(s, update_id)
                row = s.get(CallbackToken, token, with_for_update=True) if token else None
                if row is None or row.used_at is not None or row.expires_at < utcnow() \
                        or row.telegram_user_id != str(user_id):
                    log.warning("refused a callback (unknown, used, expired or someone else's)")
                    return Answer("Ce bouton n'est plus valide / This button is no longer valid.", ok=False)
                row.used_at = utcnow()
                req = s.get(Request, row.request_id)
                actor = self._actor(s, str(user_id))
                if req is None or actor is None:
                    return Answer("Ce bouton n'est plus valide / This button is no longer valid.")
                return self._act(s, actor, req, row.action, "", chat_id=str(chat_id))
        except Duplicate:
            return Answer("")
        except WorkflowError as exc:
            return Answer(str(exc), ok=False)

    def _claim_update(self, s: Session, update_id: int | None) -> None:
        if update_id is None:
            return
        try:
            with s.begin_nested():
                s.add(InboundMessage(channel="telegram-command", dedupe_key=f"tg:{update_id}", message_id="",
                                     sha256="", raw=b"", received_at=utcnow(), state="done",
                                     outcome="chat command", processed_at=utcnow()))
        except IntegrityError as exc:
            raise Duplicate from exc

    # ---- who is this --------------------------------------------------------------------------------
    def _actor(self, s: Session, user_id: str) -> Actor | None:
        st = s.scalar(select(Staff).where(Staff.telegram_id == user_id, Staff.active))
        if st:
            return Actor("staff", user_id, st.name)
        it = s.scalar(select(Interpreter).where(Interpreter.telegram_id == user_id, Interpreter.active))
        if it:
            return Actor("interpreter", it.id, it.name)
        return None

    def _requester(self, s: Session, chat_id: str) -> Requester | None:
        return s.scalar(select(Requester).where(Requester.telegram_chat_id == chat_id, Requester.active))

    def _dispatch(self, s: Session, user_id: str, chat_id: str, command: str, args: str, lang: str) -> Answer:
        actor = self._actor(s, user_id)
        if command in ("start", "help", "aide"):
            return Answer(self._help(actor, self._requester(s, chat_id) is not None))
        if command == "link":
            return self._link(s, user_id, chat_id, args, lang)
        if command == "verify":
            return self._verify(s, user_id, chat_id, args)
        if actor is not None and actor.kind == "staff" and command in STAFF_COMMANDS:
            return self._staff(s, actor, chat_id, command, args)
        if actor is not None and actor.kind == "interpreter" and command in ("accept", "decline"):
            parts = args.split(maxsplit=1)
            req = self._request(s, parts[0] if parts else "")
            return self._act(s, actor, req, command, parts[1] if len(parts) > 1 else "", chat_id=chat_id)
        requester = self._requester(s, chat_id)
        if requester is not None and command in ("mine", "mes", "cancel", "annuler", "notifications"):
            return self._requester_command(s, requester, command, args, lang)
        if command in STAFF_COMMANDS:
            log.warning("refused /%s from a user who is not staff", command)
            return Answer("Cette commande est réservée à l'équipe de la Banque. / This command is for the bank's staff only.",
                          ok=False)
        if requester is None:
            return Answer("Reliez d'abord ce clavardage à votre adresse : /link votre.adresse@ssss.gouv.qc.ca\n"
                          "First link this chat to your address: /link your.address@ssss.gouv.qc.ca")
        return Answer("Commande inconnue. /help pour la liste. / Unknown command: /help lists them.")

    def _help(self, actor: Actor | None, linked: bool) -> str:
        if actor and actor.kind == "staff":
            return ("Commandes de l'équipe / staff commands:\n/pending — demandes en attente\n/show REF\n"
                    "/offer REF INTERPRÈTE (id ou nom)\n/accept REF\n/decline REF [raison]\n/cancel REF [raison]\n"
                    "/complete REF\n/unfilled REF\n/comm REF MINUTES [note] — communication facturable\n"
                    "/search date:2026-12-01..2026-12-07 lang:es site:clsc-parc-extension status:submitted "
                    "requester:adresse")
        if actor and actor.kind == "interpreter":
            return "/accept REF — accepter une demande offerte\n/decline REF [raison] — la refuser"
        if linked:
            return ("Écrivez votre demande en texte libre (langue, date, heure, durée, lieu, mode).\n"
                    "/mine — vos demandes à venir\n/cancel REF — annuler\n/notifications off|on")
        return ("Bonjour! Pour demander un interprète ici, reliez ce clavardage à votre adresse inscrite :\n"
                "/link votre.adresse@ssss.gouv.qc.ca puis /verify CODE (code reçu par courriel).\n"
                "Hello! Link this chat first: /link your.address@… then /verify CODE.")

    def _request(self, s: Session, text: str) -> Request:
        n = parse_ref(text)
        req = s.get(Request, n) if n else None
        if req is None:
            raise WorkflowError(f"Demande introuvable / Request not found: {text.strip()[:40] or '(aucune référence)'}")
        return req

    # ---- staff ----------------------------------------------------------------------------------------
    def _staff(self, s: Session, actor: Actor, chat_id: str, command: str, args: str) -> Answer:
        if command == "pending":
            reqs = list(s.scalars(select(Request).where(Request.status.in_(("submitted", "offered")))
                                  .order_by(Request.date, Request.start_time, Request.id).limit(30)))
            self._audit(s, actor, "list", None, f"pending ({len(reqs)})")
            if not reqs:
                return Answer("Aucune demande en attente. / Nothing waiting.")
            return Answer("\n".join(x["line_fr"] for x in self.pipeline.status_lines(s, reqs)))
        if command == "search":
            reqs = self.search(s, args)
            self._audit(s, actor, "search", None, args[:200])
            if not reqs:
                return Answer("Aucun résultat. / No results.")
            return Answer("\n".join(x["line_fr"] for x in self.pipeline.status_lines(s, reqs)))
        parts = args.split(maxsplit=1)
        req = self._request(s, parts[0] if parts else "")
        rest = parts[1] if len(parts) > 1 else ""
        if command == "show":
            self._audit(s, actor, "read", req.id, "show")
            return Answer(self._details(s, req), self._buttons(s, req, actor))
        if command == "offer":
            interp = self._interpreter(s, rest)
            warnings = workflow.offer(s, req, interp, actor, self.tz)
            self._notify(s, req, "offered")
            if interp.telegram_id:
                self._tell_interpreter(s, req, interp)
            text = f"{req.ref} offerte à {interp.name} ({interp.id})."
            if warnings:
                text += "\n⚠ " + "\n⚠ ".join(warnings)
            return Answer(text, self._buttons(s, req, actor))
        if command == "comm":
            bits = rest.split(maxsplit=1)
            if not bits or not bits[0].isdigit():
                raise WorkflowError("Usage : /comm REF MINUTES [note]")
            workflow.add_communication(s, req, int(bits[0]), bits[1] if len(bits) > 1 else "", actor)
            return Answer(f"{req.ref} : communication de {bits[0]} min enregistrée (facturable).")
        return self._act(s, actor, req, command, rest, chat_id=chat_id)

    def _act(self, s: Session, actor: Actor, req: Request, action: str, reason: str, *, chat_id: str) -> Answer:
        if action == "accept":
            workflow.accept(s, req, actor)
            self._notify(s, req, "confirmed")
            return Answer(f"{req.ref} confirmée. / confirmed.")
        if action == "decline":
            workflow.decline(s, req, actor, reason)
            self._notify(s, req, "declined")
            return Answer(f"{req.ref} : refus enregistré, la demande retourne en attente. / declined.")
        if action == "cancel":
            if actor.kind == "interpreter":
                raise WorkflowError("Un interprète ne peut pas annuler une demande / Interpreters cannot cancel.")
            late = workflow.cancel(s, req, actor, reason=reason or "cancelled by staff", tz=self.tz,
                                   late_hours=self.settings.late_cancellation_hours)
            self._notify(s, req, "cancelled", late=late)
            return Answer(f"{req.ref} annulée{' (annulation tardive, facturable)' if late else ''}.")
        if action == "complete":
            workflow.complete(s, req, actor)
            self._notify(s, req, "completed")
            return Answer(f"{req.ref} terminée. / completed.")
        if action == "unfilled":
            workflow.unfilled(s, req, actor, reason)
            self._notify(s, req, "unfilled")
            return Answer(f"{req.ref} : aucun interprète (non comblée). / unfilled.")
        raise WorkflowError("Action inconnue / Unknown action.")

    def _notify(self, s: Session, req: Request, kind: str, skip_channel: str | None = None, **ctx: object) -> None:
        # exactly-once comes from the transaction that also claimed the update: a random key is enough
        self.pipeline.notifier.status_changed(s, req, kind, event_key=f"req{req.id}:{kind}:{secrets.token_hex(8)}",
                                              skip_channel=skip_channel, **ctx)

    def _interpreter(self, s: Session, text: str) -> Interpreter:
        text = text.strip()
        if not text:
            raise WorkflowError("Usage : /offer REF INTERPRÈTE (id ou nom)")
        it = s.get(Interpreter, text.lower())
        if it and it.active:
            return it
        roster = {i.id: i for i in s.scalars(select(Interpreter).where(Interpreter.active))}
        names = {i.id: fold(i.name) for i in roster.values()}
        best = process.extract(fold(text), names, scorer=fuzz.WRatio, limit=2)
        if best and best[0][1] >= 85 and (len(best) == 1 or best[0][1] - best[1][1] >= 5):
            return roster[best[0][2]]
        if best and best[0][1] >= 85:
            raise WorkflowError("Plusieurs interprètes correspondent / Several interpreters match: "
                                + ", ".join(f"{roster[b[2]].name} ({b[2]})" for b in best))
        raise WorkflowError(f"Interprète introuvable / Interpreter not found: {text[:60]}")

    def _token(self, s: Session, req: Request, action: str, user_id: str) -> str:
        token = secrets.token_urlsafe(18)
        s.add(CallbackToken(token=token, request_id=req.id, action=action, telegram_user_id=user_id,
                            created_at=utcnow(), expires_at=utcnow() + CALLBACK_TTL))
        return "cb:" + token

    def _buttons(self, s: Session, req: Request, actor: Actor) -> list[list[tuple[str, str]]]:
        """The common next steps, as single-use buttons bound to this user."""
        if actor.kind != "staff" or not actor.id.isdigit():
            return []
        uid = actor.id
        if req.status == "offered":
            return [[("✅ Acceptée", self._token(s, req, "accept", uid)), ("❌ Refusée", self._token(s, req, "decline", uid))],
                    [("🚫 Annuler", self._token(s, req, "cancel", uid))]]
        if req.status in ("submitted", "confirmed", "incomplete"):
            return [[("🚫 Annuler", self._token(s, req, "cancel", uid))]]
        return []

    def _tell_interpreter(self, s: Session, req: Request, interp: Interpreter) -> None:
        from .notify import queue_chat
        r = self.pipeline.notifier.summary(s, req)
        text = (f"Nouvelle demande offerte / New request offered: {req.ref}\n"
                f"{r['date'] or '—'} {r['start_time'].strftime('%H:%M') if r['start_time'] else ''} "
                f"({r['duration'] or '—'} min) — {r['language_name']} — {r['location_name'] or '—'}")
        if req.message_to_interpreter:
            text += f"\nMessage : {req.message_to_interpreter[:300]}"
        keyboard = [[{"text": "✅ J'accepte", "callback_data": self._token(s, req, "accept", interp.telegram_id)},
                     {"text": "❌ Je refuse", "callback_data": self._token(s, req, "decline", interp.telegram_id)}]]
        queue_chat(s, self.settings, interp.telegram_id, text, kind="offer_to_interpreter",
                   dedupe=f"offer:{req.id}:{interp.id}:{secrets.token_hex(4)}", request_id=req.id, keyboard=keyboard)

    def _details(self, s: Session, req: Request) -> str:
        r = self.pipeline.notifier.summary(s, req)
        lines = [f"{req.ref} — {req.status}{' (annulation tardive)' if req.late_cancellation else ''}",
                 f"Demandeur : {req.requester.email}",
                 f"Date : {r['date'] or '—'} {r['start_time'].strftime('%H:%M') if r['start_time'] else ''} "
                 f"({r['duration'] or '—'} min)",
                 f"Langue : {r['language_name'] or '—'} — Mode : {req.mode or '—'}",
                 f"Lieu : {r['location_name'] or '—'} {req.address or ''}".rstrip(),
                 f"Interprète : {r['interpreter_name'] or r['preferred_name'] or '—'}"]
        if req.problems and req.problems != "[]":
            lines.append(f"Problèmes : {req.problems}")
        return "\n".join(lines)

    def _audit(self, s: Session, actor: Actor, action: str, request_id: int | None, details: str) -> None:
        s.add(AuditEntry(at=utcnow(), actor=actor.label, action=action, request_id=request_id, details=details))

    def search(self, s: Session, args: str) -> list[Request]:
        """Filters: date:A..B (or one day), lang:CODE, site:ID, status:S, requester:EMAIL."""
        q = select(Request)
        for part in split_args(args):
            k, _, v = part.partition(":")
            k, v = k.lower(), v.strip()
            if not v:
                raise WorkflowError(f"Filtre incomplet / incomplete filter: {part[:40]}")
            if k == "date":
                a, _, b = v.partition("..")
                try:
                    start = date.fromisoformat(a) if a else None
                    end = date.fromisoformat(b) if b else (start if not _ else None)
                except ValueError as exc:
                    raise WorkflowError("Dates au format AAAA-MM-JJ / dates as YYYY-MM-DD") from exc
                if start:
                    q = q.where(Request.date >= start)
                if end:
                    q = q.where(Request.date <= end)
            elif k in ("lang", "langue"):
                q = q.where(Request.target_language == v.lower())
            elif k in ("site", "lieu", "location"):
                q = q.where(Request.location_id == v.lower())
            elif k in ("status", "statut"):
                q = q.where(Request.status == v.lower())
            elif k in ("requester", "demandeur"):
                q = q.join(Requester, Request.requester_id == Requester.id).where(Requester.email == v.lower())
            else:
                raise WorkflowError(f"Filtre inconnu / unknown filter: {k[:20]} (date, lang, site, status, requester)")
        return list(s.scalars(q.order_by(Request.date, Request.start_time, Request.id).limit(50)))

    # ---- requesters -----------------------------------------------------------------------------------
    def _link(self, s: Session, user_id: str, chat_id: str, args: str, lang: str) -> Answer:
        email = args.strip().lower()
        neutral = Answer("Si cette adresse est inscrite, un code vient d'y être envoyé : répondez /verify CODE.\n"
                         "If this address is registered, a code was sent to it: reply /verify CODE.")
        if not re.fullmatch(r"[^@\s]{1,64}@[^@\s]{1,255}", email):
            return Answer("Usage : /link votre.adresse@ssss.gouv.qc.ca")
        hour_ago = utcnow() - timedelta(hours=1)
        recent = s.scalar(select(func.count()).select_from(LinkCode).where(
            LinkCode.telegram_user_id == user_id, LinkCode.created_at >= hour_ago)) or 0
        if recent >= CODES_PER_HOUR:
            log.warning("link codes rate-limited for a chat user")
            return Answer("Trop de demandes de code; réessayez dans une heure. / Too many codes requested; try again in an hour.")
        requester = s.scalar(select(Requester).where(Requester.email == email, Requester.active))
        if requester is None:
            return neutral  # never say which addresses exist
        per_requester = s.scalar(select(func.count()).select_from(LinkCode).where(
            LinkCode.requester_id == requester.id, LinkCode.created_at >= hour_ago)) or 0
        if per_requester >= CODES_PER_HOUR:
            return neutral
        code = f"{secrets.randbelow(10**6):06d}"
        s.add(LinkCode(telegram_user_id=user_id, chat_id=chat_id, requester_id=requester.id,
                       code_hash=self._hash(code, user_id), created_at=utcnow(),
                       expires_at=utcnow() + timedelta(minutes=self.settings.link_code_minutes)))
        self.pipeline.notifier.reply(s, Origin("email", requester.email), "link_code", lang, None,
                                     dedupe=f"link:{user_id}:{secrets.token_hex(6)}", code=code,
                                     minutes=self.settings.link_code_minutes)
        return neutral

    @staticmethod
    def _hash(code: str, user_id: str) -> str:
        return hashlib.sha256(f"{user_id}:{code}".encode()).hexdigest()

    def _verify(self, s: Session, user_id: str, chat_id: str, args: str) -> Answer:
        code = re.sub(r"\D", "", args)
        rows = list(s.scalars(select(LinkCode).where(LinkCode.telegram_user_id == user_id, LinkCode.used_at.is_(None),
                                                     LinkCode.expires_at >= utcnow())
                              .order_by(LinkCode.id.desc()).with_for_update()))
        live = [r for r in rows if r.attempts < CODE_ATTEMPTS]
        if not live:
            return Answer("Aucun code valide : demandez-en un avec /link. / No valid code: ask for one with /link.")
        for row in live:
            if code and hmac.compare_digest(row.code_hash, self._hash(code, user_id)):
                row.used_at = utcnow()
                requester = s.get(Requester, row.requester_id)
                other = s.scalar(select(Requester).where(Requester.telegram_chat_id == chat_id))
                if other is not None and other.id != requester.id:
                    other.telegram_chat_id = None
                requester.telegram_chat_id = chat_id
                s.add(AuditEntry(at=utcnow(), actor=f"requester:{requester.email}", action="link_chat",
                                 details="chat account linked"))
                return Answer("Ce clavardage est maintenant relié à votre adresse. Écrivez votre demande en texte libre.\n"
                              "This chat is now linked to your address. Write your request in plain text.")
        for row in live:
            row.attempts += 1
        return Answer("Code incorrect. / Wrong code.")

    def _requester_command(self, s: Session, requester: Requester, command: str, args: str, lang: str) -> Answer:
        if command in ("mine", "mes"):
            items = self.pipeline.status_lines(s, self.pipeline.upcoming(s, requester))
            key = "line_en" if lang == "en" else "line_fr"
            return Answer("\n".join(x[key] for x in items) or "Aucune demande à venir. / No upcoming requests.")
        if command == "notifications":
            v = args.strip().lower()
            if v not in ("on", "off", "oui", "non"):
                return Answer("Usage : /notifications on|off")
            requester.notifications = v in ("on", "oui")
            return Answer("Notifications " + ("activées / on." if requester.notifications else "désactivées / off."))
        req = self._request(s, args.split(maxsplit=1)[0] if args.strip() else "")
        if not self.pipeline.may_act(requester, req):
            raise WorkflowError("Demande introuvable / Request not found.")
        late = workflow.cancel(s, req, Actor("requester", requester.email), reason="cancelled by requester (chat)",
                               tz=self.tz, late_hours=self.settings.late_cancellation_hours)
        self._notify(s, req, "cancelled", skip_channel="telegram", late=late)  # the answer is the chat copy
        return Answer(f"{req.ref} annulée.{' Annulation tardive : facturée.' if late else ''}")
