"""Keep only what the sender writes now: drop quoted replies, signatures and disclaimers, but keep
the request inside a forwarded message (the forwarder submits it).

Quoted-reply headers ("Le … a écrit :", "On … wrote:", Outlook's De/Envoyé/À/Objet block) are found
by mail-parser-reply; forwards, "> " quoting, signatures and confidentiality footers are handled
here because the library cuts forwards away and knows few French closings.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser

from .text import fold, scanner

_REPLY_PARSER = EmailReplyParser(languages=["fr", "en"])

FORWARD_MARKER = re.compile(
    r"^[ \t>]*(?:-{2,}\s*(?:forwarded message|message transfere|original message transfere|"
    r"message d'origine transfere)\s*-{2,}|debut du message reexpedie\s*:?|"
    r"begin forwarded message\s*:?)[ \t]*$", re.M)
ORIGINAL_MARKER = re.compile(r"^[ \t]*-{2,}\s*(?:original message|message d'origine)\s*-{2,}[ \t]*$", re.M)
FORWARD_SUBJECT = re.compile(r"^\s*(?:(?:re|aw|r)\s*:\s*)*(?:fwd?|tr|fw|transf)\s*:", re.I)
REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|r|rep|reponse|tr|fwd?|fw)\s*:", re.I)
HEADER_LINE = re.compile(
    r"^[ \t>*]*(?:de|from|envoye|sent|a|to|pour|objet|subject|sujet|date|cc|cci|bcc|"
    r"repondre a|reply-to)\s*:", re.M)
DISCLAIMER = re.compile(
    r"^[ \t]*(?:avis de confidentialite|confidentialite|confidentiality|avis important|"
    r"ce (?:courriel|message)(?: et les pieces jointes)? (?:peut contenir|est confidentiel|contient|"
    r"et toute piece|s'adresse|est destine)|le present (?:courriel|message)|"
    r"this (?:e-?mail|message)(?: and any attachments?)? (?:may contain|is confidential|contains|is intended)|"
    r"confidentiality notice|privileged|please consider the environment|pensez a l'environnement)", re.M)
SENT_FROM = re.compile(r"^[ \t]*(?:envoye de mon|envoye depuis|sent from my|sent from outlook|get outlook for|"
                       r"obtenir outlook)\b.*$", re.M)
CLOSING = re.compile(
    r"^[ \t]*(?:merci|thanks|thank you|thx|tx|best|regards|kind regards|best regards|warm regards|cheers|"
    r"cordialement|salutations|bien a vous|bonne journee|bonne fin de journee|bonne soiree|a bientot|"
    r"veuillez agreer|je vous remercie|sincerely|respectfully|take care)\b[^\n]{0,60}$", re.M)


ANY_QUOTE_MARKER = scanner(r" \t>*adefhosw_\-", r"a ecrit|wrote:|^[ \t>*]*(?:de|from|envoye|sent|objet|subject)\s*:|^-{3,}|^_{5,}|^>|"
                              r"schrieb|escribio|ha scritto|heeft geschreven", re.M)


def is_forward(subject: str, text: str) -> bool:
    return bool(FORWARD_SUBJECT.match(subject or "")) or bool(FORWARD_MARKER.search(fold(text)))


def is_reply(subject: str) -> bool:
    return bool(REPLY_SUBJECT.match(subject or ""))


def _drop_header_block(text: str) -> str:
    """Remove the De/Date/Objet lines that open a forwarded message."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and (not lines[i].strip() or HEADER_LINE.match(fold(lines[i]))
                              or (i > 0 and lines[i].startswith((" ", "\t")) and HEADER_LINE.match(fold(lines[i - 1])))):
        i += 1
    return "\n".join(lines[i:])


ORGANISATION_PART = re.compile(r"\s[-\u2013\u2014|/]\s|[(\[<]")


def personal_names(display_name: str) -> list[str]:
    """The folded words (3+ letters) of a display name that name the person, not where they
    work: 'Sophie Tremblay (CIUSSS NIM)', 'Sophie Tremblay - CCOMTL' and 'TREMBLAY Sophie CCOMTL'
    give the person's names only. What follows a bracket or a spaced dash or bar is dropped,
    and so are words in capitals unless nothing else is left (an organisation's acronym in a
    message's own lines must not be taken for the start of the signature)."""
    words = re.findall(r"[^\W\d_]{3,}", ORGANISATION_PART.split(display_name, 1)[0])
    kept = [w for w in words if not w.isupper()] or words
    return [fold(w) for w in kept]


def strip_signature(text: str, sender_name: str = "") -> str:
    """Cut disclaimers, 'Sent from my iPhone', '-- ' blocks and the signature after a closing line."""
    t = fold(text)
    cut = len(text)
    for rx in (DISCLAIMER, SENT_FROM):
        m = rx.search(t)
        if m:
            cut = min(cut, m.start())
    m = re.search(r"^[ \t]*--[ \t]*$|^[ \t]*__{5,}[ \t]*$", t, re.M)
    if m:
        cut = min(cut, m.start())
    text, t = text[:cut], t[:cut]
    # A closing formula followed only by short lines (name, title, place, phone): a signature.
    for m in reversed(list(CLOSING.finditer(t))):
        rest = [ln for ln in t[m.end():].split("\n") if ln.strip()]
        if len(rest) <= 9 and all(len(ln) < 90 for ln in rest) and m.start() > 0:
            return text[:m.end()].rstrip()
        break
    # No closing formula: a trailing block that starts with the sender's name.
    names = personal_names(sender_name)
    if names:
        lines = t.split("\n")
        pos = 0
        for idx, ln in enumerate(lines):
            words = set(re.findall(r"[a-z]{3,}", ln))
            if idx > 0 and len(ln) < 60 and words and len(words & set(names)) >= 1 and len(ln.split()) <= 5:
                rest = [x for x in lines[idx:] if x.strip()]
                if len(rest) <= 9 and all(len(x) < 90 for x in rest):
                    return text[:pos].rstrip()
            pos += len(ln) + 1
    return text.rstrip()


def current_text(body: str, subject: str = "", sender_name: str = "") -> str:
    """What the sender writes now, forwarded request included; quotes and signatures removed."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    folded = fold(body)
    fwd = FORWARD_MARKER.search(folded)
    if fwd is None and FORWARD_SUBJECT.match(subject or ""):
        fwd = ORIGINAL_MARKER.search(folded)  # Outlook forwards under "-----Original Message-----" too
    if fwd:
        own = _strip_quotes(body[:fwd.start()], sender_name)
        forwarded = _drop_header_block(body[fwd.end():].lstrip("\n"))
        return (own + "\n\n" + _strip_quotes(forwarded, "")).strip()
    cut = reply_header_start(body)
    if cut is None and is_reply(subject):
        m = ATTRIBUTION.search(folded)  # "BIQ wrote:" on its own line, no date for the library to see
        cut = m.start() if m and m.start() > 0 else None
    if cut is not None and not FORWARD_SUBJECT.match(subject or ""):
        body = body[:cut]
    if not ANY_QUOTE_MARKER.search(folded[:len(body)]):
        return _strip_quotes(body, sender_name)  # nothing quoted: no need for the reply parser
    try:
        replies = _REPLY_PARSER.read(body).replies
    except Exception:  # noqa: BLE001 - regex trouble on pathological input: keep the whole text
        replies = []
    if not replies:
        return _strip_quotes(body, sender_name)
    own = replies[0].content
    if len(replies) > 1 and FORWARD_SUBJECT.match(subject or ""):
        forwarded = _drop_header_block(_without_header(replies[1]))
        return (_strip_quotes(own, sender_name) + "\n\n" + _strip_quotes(forwarded, "")).strip()
    return _strip_quotes(own, sender_name)


ATTRIBUTION = re.compile(r"^[ \t]*[^\n]{1,120}?\b(?:wrote|a ecrit)[ \t]*:[ \t]*$", re.M)
QUOTE_FROM = re.compile(r"^[ \t>*]*(?:de|from)\s*:", re.M)
QUOTE_NEXT = re.compile(r"^[ \t>*]*(?:envoye|sent|date|a|to|objet|subject|cc)\s*:")


def reply_header_start(text: str) -> int | None:
    """Offset of an Outlook-style 'De : / Envoyé : / À : / Objet :' block, blank lines allowed."""
    folded = fold(text)
    for m in QUOTE_FROM.finditer(folded):
        following = [ln for ln in folded[m.end():].split("\n")[1:8] if ln.strip()][:4]
        if sum(bool(QUOTE_NEXT.match(ln)) for ln in following) >= 2:
            return m.start()
    return None


def _without_header(reply) -> str:  # noqa: ANN001 - mailparser_reply.EmailReply
    content = reply.content
    if reply.headers and content.startswith(reply.headers):
        content = content[len(reply.headers):]
    return content


def _strip_quotes(text: str, sender_name: str) -> str:
    folded = fold(text)
    m = ORIGINAL_MARKER.search(folded)
    if m:
        text = text[:m.start()]
    m = re.search(r"^[ \t]*_{8,}[ \t]*$", fold(text), re.M)
    if m:
        text = text[:m.start()]
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith(">")]
    return strip_signature("\n".join(lines), sender_name).strip()
