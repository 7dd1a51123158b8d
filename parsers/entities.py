"""Directory-backed and pattern-backed field extractors.

Each function takes the current text (original and folded, same offsets) and returns a value or
None. They prefer None to a guess: two different installations, two target languages or an
unclear mode give None, and the bot then asks.
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz, process

from .directory import Directory, Match, key, tokens
from .text import fold as _f
from .text import scanner

STREET_WORDS = scanner("abcmprs", r"\b(?:rue|boul|boulevard|bd|blvd|avenue|av|chemin|ch|place|autoroute|street|"
                          r"road|rd|montee|cote|rang|metro|station)\.?\s*$")
PLACE_DISTRACTORS = scanner("adefhlmprstv", r"(?:transfere|transferee|transferred|hospitalise|hospitalisee|hospitalized|"
                               r"(?:habite|habitent|demeure|lives|living|resides|residing)(?:\s+(?:pres|tout pres|a cote|"
                               r"a proximite|near|close to|next to))?(?:\s+(?:de|du|d'))?|"
                               r"admis|admitted|demenage|moved|provenant|vient|venant|from|"
                               r"(?:refere|referee|referred|adresse|adressee)\s+(?:par|by|from|de)|"
                               r"(?:est|sont|is|are) (?:suivie?s?|followed|connue?s?|known)\s+(?:au|a|par|at|by|in|dans))"
                               r"\s+(?:a|au|to|de|du|the|a l'|a la|de l'|de la|le|la|l')?\s*$")
NEGATED = scanner("aeinpr", r"(?:et non|and not|not|\bnor|\bni|au lieu d[eu']?|plutot qu[e']|instead of|rather than|pas)\s+"
                     r"(?:a|au|aux|at|the|de|du|en|in|par|by|la|le|l')?\s*(?:la\s+|l')?$")


def _negated(folded: str, start: int) -> bool:
    return bool(NEGATED.search(folded[max(0, start - 25):start]))


# ---- languages ----------------------------------------------------------------------------------

LANG_CUE_BEFORE = scanner(r"eilpsd:\-", r"(?:\ben|\binterprete|\binterpreter|\blangue|\blanguage|\bparle|\bspeaks?|"
                             r"\bspeaking|\bde langue|\bd'origine|\bin|[:-])\s*(?:\(?dialecte\s+)?$")
LANG_CUE_AFTER = re.compile(r"^\s*(?:interpreter|interpretation|speaking|speaker|-speaking|\))")
RATHER = re.compile(r"^\W*(?:ou plutot|ou bien plutot|or rather|non|no|pardon|sorry|desolee?|je veux dire|i mean)"
                    r"\W*(?:en|in|le|la|l')?\s*$")
EITHER = re.compile(r"^\s*(?:/|ou|or|ou bien|or else)\s*(?:en\s+|in\s+|le\s+|la\s+|l')?$")
AND = re.compile(r"\b(?:et|and)\b")
PAIR_SEP = re.compile(r"^\s*(?:-|/|>|vers|to|into|a|au|->|=>|et|and)\s*(?:le |la |l'|les |the )?$")
# the clinician's side in English, said in words: "le médecin est anglophone", "the meeting will be in English"
SOURCE_ENGLISH = re.compile(
    r"\b(?:medecin|docteure?|dre?|infirmiere?|intervenante?|travailleu(?:se|r) social[e]?|professionnel(?:le)?|"
    r"clinicien(?:ne)?|la rencontre|le rendez-vous|l'equipe|doctor|nurse|clinician|physician|the meeting|"
    r"the appointment|the team)\b[^.\n;]{0,30}?\b(?:parle|parlera|speaks|will speak|est|sera|is|will be|se fera|"
    r"se deroulera|will be held)\s+(?:en\s+|in\s+)?(?:anglais|english|anglophone|english-speaking)\b")


def language_mentions(d: Directory, original: str, folded: str) -> list[Match]:
    """Language mentions in order: strong names anywhere, weak ones only next to a cue."""
    found = d.language_index.find(original)
    for m in d.weak_language_index.find(original):
        if any(m.start < f.end and f.start < m.end for f in found):
            continue
        # "tigrinya ou tigré": a weak name joined to a language already named
        joined = any(re.fullmatch(r"\s*(?:ou|or|/)\s*(?:en\s+|le\s+|in\s+)?", folded[f.end:m.start])
                     for f in found if f.end <= m.start)
        if joined or LANG_CUE_BEFORE.search(folded[max(0, m.start - 20):m.start]) \
                or LANG_CUE_AFTER.match(folded[m.end:m.end + 15]):
            found.append(m)
    if not found:
        found = _fuzzy_languages(d, original, folded)
    return sorted(found, key=lambda m: m.start)


def _fuzzy_languages(d: Directory, original: str, folded: str) -> list[Match]:
    """Typos and inflections ('espagnole', 'tigrinia') next to an interpreter cue."""
    out = []
    words = list(d.language_words)
    for tok, s, e in tokens(original):
        if len(tok) < 5 or not tok.isalpha():
            continue
        if not (LANG_CUE_BEFORE.search(folded[max(0, s - 20):s]) or LANG_CUE_AFTER.match(folded[e:e + 15])):
            continue
        # "langue turque", "en langue chinoise", "vietnamienne": a name in the feminine
        low = _f(tok)
        masculine = next((d.language_tokens[c] for c in (low[:-3] + "c" if low.endswith("que") else "",
                                                          low[:-2] if low.endswith("nne") else "",
                                                          low[:-1] if low.endswith("e") else "")
                          if c in d.language_tokens), None)
        if masculine:
            out.append(Match(s, e, masculine, tok))
            continue
        best = process.extractOne(tok, words, scorer=fuzz.ratio, score_cutoff=84)
        if best:
            out.append(Match(s, e, d.language_words[best[0]], tok))
    return out


def languages(d: Directory, original: str, folded: str, form: dict) -> tuple[str | None, str | None, list[Match]]:
    """(source, target, mentions). Source only when stated: a form field or a pair 'français-espagnol'."""
    source = target = None
    mentions = language_mentions(d, original, folded)
    if "source_language" in form:
        v = form["source_language"][0]
        found = language_mentions(d, v, _f(v))
        source = found[0].id if len(found) == 1 else None
    if "target_language" in form:
        v = form["target_language"][0]
        found = language_mentions(d, v, _f(v))
        target = found[0].id if found and len({m.id for m in found}) == 1 else None
        if target:
            return source, target, mentions
    # a pair "français-espagnol" / "English–Tigrinya" / "de l'anglais vers le tigrigna"
    for a, b in zip(mentions, mentions[1:], strict=False):
        sep = folded[a.end:b.start]
        if a.id in ("fr", "en") and b.id not in ("fr", "en") and PAIR_SEP.match(sep):
            source = source or a.id
        elif b.id in ("fr", "en") and a.id not in ("fr", "en") and PAIR_SEP.match(sep) and not AND.search(sep):
            source = source or b.id  # "ukrainien-français", "Ukrainian > English"; not "speaks Arabic and French"
    if source is None and SOURCE_ENGLISH.search(folded):
        source = "en"
    # "pas le dari mais le pachto", "Pashto, not Dari", "en dari, ou plutôt en pachto": the
    # language denied or taken back is not the one asked for
    others = [m for m in mentions if m.id not in ("fr", "en") and not _negated(folded, m.start)]
    others = [m for i, m in enumerate(others)
              if i + 1 == len(others) or not RATHER.match(folded[m.end:others[i + 1].start])]
    ids = {m.id for m in others}
    if any(a.id != b.id and EITHER.match(folded[a.end:b.start]) for a, b in zip(others, others[1:], strict=False)):
        return source, None, mentions  # "swahili ou kinyarwanda", "Hebrew or Yiddish": either, so none
    if len(ids) == 1:
        target = others[0].id
    elif len(ids) > 1:
        # "interprète en arabe … (le dialecte syrien)" — keep the one named with an interpreter cue
        cued = {m.id for m in others if LANG_CUE_BEFORE.search(folded[max(0, m.start - 20):m.start])
                or LANG_CUE_AFTER.match(folded[m.end:m.end + 15])}
        target = next(iter(cued)) if len(cued) == 1 else None
    return source, target, mentions


# ---- installations --------------------------------------------------------------------------------

def installation_mentions(d: Directory, original: str, folded: str) -> list[Match]:
    out = []
    for m in d.installation_index.find(original):
        before = folded[max(0, m.start - 20):m.start]
        if STREET_WORDS.search(before):
            continue
        out.append(m)
    return out


def location(d: Directory, original: str, folded: str, form: dict) -> tuple[str | None, list[Match]]:
    if "location" in form and form["location"][0]:
        v = form["location"][0]
        found = installation_mentions(d, v, _f(v)) or _fuzzy_installation(d, v)
        ids = {m.id for m in found}
        if len(ids) == 1:
            return next(iter(ids)), found
    mentions = installation_mentions(d, original, folded)
    kept = [m for m in mentions if not _negated(folded, m.start)
            and not PLACE_DISTRACTORS.search(folded[max(0, m.start - 30):m.start])]
    ids = {m.id for m in kept}
    if len(ids) == 1:
        return next(iter(ids)), mentions
    return None, mentions


def _fuzzy_installation(d: Directory, value: str) -> list[Match]:
    names = {}
    for inst in d.installations.values():
        for v in (inst.name, *inst.aliases):
            names[" ".join(key(v))] = inst.id
    best = process.extractOne(" ".join(key(value)), list(names), scorer=fuzz.token_sort_ratio, score_cutoff=85)
    return [Match(0, len(value), names[best[0]], best[0])] if best else []


# ---- interpreters ---------------------------------------------------------------------------------

TITLES = r"(?:m\.|mr\.?|mme|mrs\.?|ms\.?|mlle|madame|monsieur|miss)"
PREFER_CUE = re.compile(
    r"(?:aimerai(?:t|ent|s)? avoir|aimerions avoir|aimerions|souhaiterai(?:t|ent|s)?(?: avoir)?|prioriser|"
    r"prefere(?:rait|rions)?|would (?:like|prefer)|prefers?|if possible,?|si possible,?|request(?:ing)?|"
    r"demander?|avoir|de preference|preferablement|idealement|preferably|ideally|preferred interpreter|"
    r"interprete (?:preferee?|souhaitee?))\s*:?\s+(?:" + TITLES + r"\s+)?$")
# a form's "Interprète à prioriser : aucun" states no preference
# a free-text form field filled with "aucun", "N/A", "-", "rien": nothing to say
NOTHING = re.compile(r"^\W*(?:aucune?|none|n/?a|nil|rien|nothing|sans objet|s\.?o\.?|-+|/|\.+|x)\W*$")
# and an interpreter's name field with "pas de préférence", "peu importe": no one in particular
NO_PREFERENCE = re.compile(r"^\W*(?:no|non|pas de preference|sans preference|no preference|indifferent|peu importe|"
                           r"any|anyone|n'importe (?:qui|lequel|laquelle))\W*$")
NOT_THIS_ONE = re.compile(r"\b(?:(?:pas|not|sauf|except|eviter|avoid|plutot que|autre que|other than|sans)\s+"
                          r"(?:(?:avec|with|de|d')\s*)?|"
                          r"(?:ne pas|ne plus|don't|do not|never|jamais)\s+(?:envoyer|send|assigner|assign|affecter|"
                          r"prendre|book|reprendre|mettre|utiliser|use)\s+(?:\w+\s+)?|"
                          r"(?:ne veut|ne veulent|ne souhaite|ne souhaitent|doesn't want|does not want|don't want|"
                          r"do not want)\s+(?:pas\s+|plus\s+)?(?:avoir\s+|de\s+|d'|to have\s+)?|refuse\w*\s+)"
                          r"(?:" + TITLES + r"\s*)?$")
# "Karim Aziz ne doit pas être assigné", "Karim Aziz should not be sent"
NOT_THIS_ONE_AFTER = re.compile(r"^\W{0,3}(?:ne (?:doit|peut|devrait) pas|n'est pas (?:souhaitee?|bienvenue?)|ne convient pas|"
                                r"should not|must not|shouldn't|should never|is not (?:wanted|welcome))\b")
NAME_AFTER_CUE = re.compile(r"^\s*((?:[A-ZÀ-ÖØ-Þ][\w'’\-]+|[A-ZÀ-ÖØ-Þ]\.)(?:\s+[A-ZÀ-ÖØ-Þ][\w'’\-]+){1,2})")


def preferred_interpreter(d: Directory, original: str, folded: str, form: dict, sender_name: str) -> str | None:
    if "preferred_interpreter" in form:
        v = form["preferred_interpreter"][0]
        if not v or NOTHING.match(_f(v)) or NO_PREFERENCE.match(_f(v)):
            return None
        return _roster_id(d, v) or v
    sender = set(key(sender_name))
    for m in d.interpreter_index.find(original):
        if set(d.interpreter_names[m.id].split()) <= sender:
            continue
        if NOT_THIS_ONE.search(folded, max(0, m.start - 30), m.start) or NOT_THIS_ONE_AFTER.match(folded[m.end:m.end + 40]):
            continue  # "pas Karim Aziz svp", "ne pas envoyer Karim Aziz": a preference against
        return m.id
    # "Mme Nowak", "M. Pierre": a title and a unique surname
    for m in re.finditer(TITLES + r"\s+([a-z][\w'\-]+)", folded):
        if NOT_THIS_ONE.search(folded, max(0, m.start() - 25), m.start()):
            continue
        surname = key(original[m.start(1):m.end(1)])
        if surname and surname[0] in d.interpreter_surnames:
            return d.interpreter_surnames[surname[0]]
    # typos in a full name right after a preference cue; otherwise the name as written
    for m in re.finditer(r"\b(?:avoir|prioriser|aimerait avoir|prefer|if|de preference|preferablement|idealement|"
                         r"preferably|ideally|preferred interpreter|interprete (?:preferee?|souhaitee?))\s*:?\s+", folded):
        if not PREFER_CUE.search(folded[max(0, m.start() - 30):m.end()]) and not folded[m.start():].startswith("if "):
            continue
        nm = NAME_AFTER_CUE.match(original[m.end():])
        if not nm:
            continue
        name = nm.group(1)
        rid = _roster_id(d, name)
        if rid:
            return rid
        if folded[m.start():].startswith("if "):
            continue
        if not set(key(name)) & sender and _looks_like_person(name):
            return name
    return None


def _looks_like_person(name: str) -> bool:
    words = name.split()
    return 2 <= len(words) <= 3 and not any(w.lower() in ("clsc", "hopital", "hôpital", "centre", "clinique",
                                                          "dr", "dre", "docteur") for w in words)


def _roster_id(d: Directory, name: str) -> str | None:
    k = " ".join(key(name))
    if not k:
        return None
    for m in d.interpreter_index.find(name):
        return m.id
    best = process.extractOne(k, d.interpreter_names, scorer=fuzz.token_sort_ratio, score_cutoff=85)
    if best:
        return best[2]
    parts = k.split()
    if len(parts) == 1 and parts[0] in d.interpreter_surnames:
        return d.interpreter_surnames[parts[0]]
    if len(parts) == 2 and parts[1] in d.interpreter_surnames:
        # "Abdi Warsame", "A. Warsame" for Abdirahman Warsame: the surname, and the given name shortened
        iid = d.interpreter_surnames[parts[1]]
        given = d.interpreter_names[iid].split()[0]
        if given.startswith(parts[0]) and (len(parts[0]) >= 3 or re.match(r"\s*\w\s*\.", name)):
            return iid
    if len(parts) >= 2:  # "Ana Sofia" of "Ana Sofia Pereira": two names or more that only one interpreter has
        owners = [iid for iid, full in d.interpreter_names.items() if set(parts) <= set(full.split())]
        if len(owners) == 1:
            return owners[0]
    return None


# ---- mode, type, notify, phone ----------------------------------------------------------------------

MODE_PATTERNS = {
    "in_person": scanner("aefhiops", r"\b(?:en presentiel|presentiel|presentielle|en personne|in person|in-person|"
                            r"sur place|on site|on-site|face to face|en face a face|se rendre sur place|"
                            r"a domicile|au domicile|home visit|at (?:the patient's|the client's|their|her|his) home)\b"),
    "phone": scanner("abcopt", r"\b(?:telephonique|par telephone|au telephone|by phone|over the phone|by telephone|"
                        r"phone call|phone interpretation|telephone interpretation|appel telephonique|"
                        r"conference call|par tel|appel conference|conference telephonique|conference a trois|"
                        r"three-way call|3-way call)\b|(?<=, )(?:phone|telephone)(?=\s*(?:[.;]|,(?!\s*\+?1?[\s.-]?\(?\d{3}\)?[\s.-]?\d{3})|\n|$))|"
                        r"(?<=\()\s*(?:phone|telephone|tel)\s*(?=\))"),
    "video": scanner("eoptvwz", r"\b(?:visio|visioconference|videoconference|video|par video|en video|teams|zoom|"
                        r"webex|virtual|virtuel|virtuelle|en ligne|online|telesante|teleconsultation|"
                        r"video call)\b"),
}
REMOTE = re.compile(r"\b(?:a distance|remote|remotely)\b")
CONTACT_BEFORE = re.compile(r"\b(?:avis[ea]\w*|preven\w*|previen\w*|rappel\w*|appel\w*|joind\w*|contact\w*|"
                            r"confirm\w*|remind\w*|notif\w*|call\w*|reach\w*)\b[^.\n]*$")
FORM_MODE_WORDS = {
    "phone": re.compile(r"^\W*(?:telephone|phone|tel|telephonique)\b"),
    "video": re.compile(r"^\W*(?:video|visio)\b"),
    "in_person": re.compile(r"^\W*(?:presence|personne|person|physique)\b"),
}
IMPLIED_IN_PERSON = scanner("adit", r"\b(?:au|a l'|a la|at the|at our|at|a notre|dans nos|in our|to our)\s*"
                               r"(?:clsc|hopital|clinique|clinic|hospital|locaux|bureau|office|chu|chum|cusm|muhc|"
                               r"institut|pavillon)\b")


AT_PLACE = re.compile(r"\b(?:au|a l'|a la|aux|at the|at|a)\s*$")


def mode(folded: str, form: dict, places: list[Match] = ()) -> str | None:
    """How the interpreter works, as stated; being "at" a place (a named installation, "au CLSC")
    says in person."""
    if "mode" in form and form["mode"][0]:
        v = _f(form["mode"][0])
        hits = {name for name, rx in MODE_PATTERNS.items() if rx.search(v)}
        if not hits:  # a form's value may be the bare word: "Mode : Téléphone"
            hits = {name for name, rx in FORM_MODE_WORDS.items() if rx.match(v)}
        if len(hits) == 1:
            return hits.pop()
    hits: dict[str, int] = {}
    for name, rx in MODE_PATTERNS.items():
        for m in rx.finditer(folded):
            if _negated(folded, m.start()):
                continue
            if name == "phone" and CONTACT_BEFORE.search(folded[max(0, m.start() - 50):m.start()]):
                continue  # "prévenir la patiente par téléphone" is how she is told, not how the interpreter works
            if name == "video" and re.match(r"teams|zoom", m.group()) and \
                    re.search(r"\blien|\blink|\binvitation", folded[max(0, m.start() - 25):m.end() + 25]) and \
                    not re.search(r"\b(?:par|via|sur|over|on|by|en)\s+$", folded[max(0, m.start() - 8):m.start()]):
                continue  # "le lien Teams sera envoyé" alone does not say the session is by video
            hits.setdefault(name, m.start())
    if hits.keys() == {"in_person"} and any(
            not re.search(r"\b(?:no|not|pas|sans|without|non)\s*(?:de |en |a |of )?$", folded[max(0, r.start() - 12):r.start()])
            for r in REMOTE.finditer(folded)):
        return None  # "à distance ou sur place": either way
    if len(hits) == 1:
        return next(iter(hits))
    if len(hits) > 1:
        return None
    for m in IMPLIED_IN_PERSON.finditer(folded):
        if not _negated(folded, m.start()) and not PLACE_DISTRACTORS.search(folded[max(0, m.start() - 30):m.start()]):
            return "in_person"
    for p in places:  # "at the Jewish General Hospital", "à Sainte-Justine"
        if AT_PLACE.search(folded, max(0, p.start - 8), p.start) and not _negated(folded, p.start) \
                and not PLACE_DISTRACTORS.search(folded[max(0, p.start - 30):p.start]):
            return "in_person"
    return None


def interpreter_type(form: dict, folded: str) -> str | None:
    v = _f(form["interpreter_type"][0]) if "interpreter_type" in form else ""
    if not v:
        m = re.search(r"(?:(?:type d'interprete|interpreter type|type of interpreter)\s*:?|\btype\s*:)\s*([^\n.;]*)", folded)
        v = m.group(1) if m else ""
    if not v and re.search(r"\b(?:(?:un |d'un |a |an )?fournisseur externe|external provider|agence externe|"
                           r"interpretes? (?:externes?|d'agence|d'une agence)|external interpreter|agency interpreter)\b",
                           folded):
        return "external"
    if not v and re.search(r"\binterpretes? (?:de la|du|de) (?:bi du rsss|bi|banque)\b|\binterpreter from the bank\b",
                           folded):
        return "bi_rsss"
    if re.search(r"\bbi du rsss\b|\bbanque\b|\bbi\b|\brsss\b|bank", v):
        return "bi_rsss"
    if re.search(r"fournisseur|externe|external|agence|agency|provider", v):
        return "external"
    return None


YES = re.compile(r"^\s*(?:oui|yes|o|y|vrai|true)\b")
NO = re.compile(r"^\s*(?:non|no|n|faux|false|pas necessaire|not needed)\b")
NOTIFY_NO = re.compile(r"\b(?:pas besoin d'(?:aviser|appeler|rappeler|prevenir|contacter)|"
                       r"pas besoin de (?:rappel|l'aviser|la prevenir|le prevenir|les aviser|l'appeler)|"
                       r"pas de rappel|aucun rappel|no reminder|no need for a reminder|(?:don't|do not) remind|"
                       r"deja ete avisee?|deja (?:avisee?|au courant|informee?)|already (?:been )?(?:notified|informed|"
                       r"aware|knows)|"
                       r"(?:ne pas|n'est pas necessaire d')\s*(?:aviser|appeler|rappeler|prevenir|contacter)|"
                       r"no need to (?:call|notify|remind|contact)|do not (?:call|notify|contact)|"
                       r"don't (?:call|notify|contact))")
NOTIFY_YES = re.compile(r"\b(?:aviser|avisez|rappeler|rappelle|rappelez|prevenir|previenne|"
                        r"remind|reminder|notify|confirmer le rendez-vous|confirm the appointment|"
                        r"lui rappeler|rappel|"
                        r"(?:l'|la |le |les |lui )(?:aviser|prevenir|appeler|rappeler|contacter|joindre)|"
                        r"(?:notify|remind|call|contact) (?:her|him|them)|"
                        r"(?:call|phone|contact|text|appeler|telephoner|contacter|joindre)\b[^.\n]{0,60}"
                        r"\b(?:la veille|the day before|the night before|beforehand|ahead of time|in advance|"
                        r"a l'avance|d'avance|pour (?:lui )?confirmer|to confirm))\b")
USER_WORDS = re.compile(r"\b(?:usager|usagere|patient|patiente|pt|maman|mere|pere|papa|parent|parents|famille|"
                        r"fille|fils|daughter|soeur|sister|frere|brother|conjointe?|spouse|husband|wife|mari|epouse|"
                        r"tuteur|tutrice|guardian|"
                        r"family|mother|father|mom|dad|user|client|cliente|beneficiaire|monsieur|madame|"
                        r"son numero|her number|his number|their number|la dame|le monsieur|l'enfant|"
                        r"joindre|joint|reached|reach (?:her|him|them)|call (?:her|him|them))\b")
SELF_PHONE = re.compile(r"(?:me joindre|me rejoindre|m'appeler|me contacter|reach me|call me|contact me|"
                        r"my number|mon numero|my phone|ma ligne|questions)")
PHONE = scanner(r"\d+(", r"(?<![\d-])(?:\+?1[\s.-]?)?\(?([2-9]\d{2})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})(?![\d-])")


def notify_user(form: dict, folded: str) -> bool | None:
    if "notify_user" in form:
        v = _f(form["notify_user"][0])
        if YES.match(v):
            return True
        if NO.match(v):
            return False
    if NOTIFY_NO.search(folded):
        return False
    for m in NOTIFY_YES.finditer(folded):
        if _negated(folded, m.start()) or SELF_PHONE.search(folded, max(0, m.start() - 3), m.start() + 12):
            continue  # "vous pouvez m'appeler pour confirmer": the requester, not the user
        answer = re.match(r"[^:?\n]{0,60}[:?]\s*(oui|yes|non|no)\b", folded[m.end():])
        if answer:  # a question or label answered on its line: "Rappel au patient ? Non"
            return answer.group(1) in ("oui", "yes")
        sent = folded[max(0, m.start() - 80):m.end() + 80]
        if USER_WORDS.search(sent) or PHONE.search(sent) or PRONOUN_USER.match(m.group()):
            return True
    return None


PRONOUN_USER = re.compile(r"(?:l'|la |le |les |lui )\w|(?:notify|remind|call|contact) (?:her|him|them)")
SENTENCE_END = re.compile(r"(?<!\btel)(?<!\bno)(?<!\bn)(?<!\b[a-z])[.!?\n](?=\s|$)")  # "(tél. 438-…)", "Mme T." end nothing


def user_phone(form: dict, original: str, folded: str) -> str | None:
    if "user_phone" in form:
        m = PHONE.search(form["user_phone"][0])
        if m:
            return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    found = []
    for m in PHONE.finditer(folded):
        before = folded[max(0, m.start() - 120):m.start()]
        sentence = SENTENCE_END.split(before)[-1]
        after = folded[m.end():m.end() + 20]
        if re.match(r"^\s*[,;]?\s*(?:poste|ext|x\b|#)", after) or SELF_PHONE.search(sentence):
            continue
        if USER_WORDS.search(sentence) or NOTIFY_YES.search(sentence):
            found.append(f"{m.group(1)}-{m.group(2)}-{m.group(3)}")
    return found[0] if len(set(found)) == 1 else None


# ---- reason and free-text fields ------------------------------------------------------------------

APPOINTMENT_NOUNS = re.compile(
    r"\b(?:consultation|rencontre|rencontres|suivi|evaluation|rdv|rendez-vous|seance|seances|session|"
    r"sessions|follow-up|followup|assessment|appointment|meeting|visit|visite|atelier|workshop|appel|"
    r"examen|exam|check-up|checkup|physio|therapie|therapy|chimiotherapie|chemotherapy|vaccination|"
    r"vaccin|teleconsultation|annonce|entrevue|interview|groupe|group|clinic|clinique|chirurgie|"
    r"surgery|accouchement|echographie|ultrasound|test|bilan|intervention|traitement|treatment|"
    r"orientation|accueil|signalement|conference|reunion|audience|hearing|[a-z]+logie|[a-z]+logy|"
    r"[a-z]+therapie|[a-z]+therapy|pre-op|preop|post-op|pre-operatoire|preoperatoire|[a-z]*natal|"
    r"post-partum|postpartum|starting|debut|cours|class)\b")
REASON_CUE = re.compile(
    r"(?:\b(?:c'est pour|c'est|it's for|it is for|it's|it is|this is for|this is|ce sera|it will be|it'll be|"
    r"pour|for|concernant|regarding|"
    r"offrons|organisons|tenons|offer|hold|host)\b|\b(?:il s'agit d'|dans le cadre d'|au sujet d'))"
    r"\s*(?:for\s+|pour\s+)?(?:(?:un|une|la|le|les|l'|a|an|the|his|her|their|des|d'un|d'une|two|deux|trois|three|"
    r"our|nos|notre)\b\s*)?(?:\w+'s\s+)?")
NOT_REASON_START = re.compile(
    r"^(?:in person|in-person|en personne|en presentiel|presentiel|by phone|par telephone|by video|par video|"
    r"en visio|on site|sur place|virtual|"
    r"usager|usagere|patient|patiente|patients|client|one of|l'un|un de|une de|him|her|them|"
    r"mme|m\.|mr|mrs|ms|monsieur|madame|enfant|child|elderly|eux|lui|elle|"
    r"la meme|le meme|the same|environ|about|[0-9]|interprete|interpreter|interpretation|\w+ interpreter|"
    r"biq\b|#|ref\b|request|demande|the request|this request|cette demande|the appointment|this appointment|"
    r"le rendez-vous|ce rendez-vous|le rdv|ce rdv|it\b|cela|ca\b)")
REASON_STOP = re.compile(r"[.;!?\n]|,\s|\s-\s|\s\(|\s(?:avec l'|le \d|on (?:mon|tue|wed|thu|fri|sat|sun)|prevue? le)")
REASON_STOP_LOOSE = re.compile(r"[.;!?\n]|,\s|\s-\s|\s\(")
TRAILING = re.compile(r"(?:\s+(?:d['’]environ|environ|about|around|approximately|au|aux|a|à|at|in|de|du|des|the|en|on|le|la|les|l'|for|pour|with|avec|et|and|"
                      r"par|by|qui|who|dans|chez|d'|un|une|a))+\s*$", re.I)
OF_PATIENT = re.compile(r"\s+(?:de|du|d'|pour|for|of|avec|with)\s*(?:m|mme|mr|mrs|ms|mlle|monsieur|madame|miss)\b")
LEADING_PATIENT = re.compile(r"^(?:(?:a )?patient who is |(?:un |une )?patiente? qui |the patient is )", re.I)


# "son rendez-vous", "les rencontres suivantes", "another appointment": an appointment, not why
GENERIC_APPOINTMENT = re.compile(
    r"^(?:(?:son|sa|ses|mon|ma|mes|leur|leurs|votre|vos|notre|nos|his|her|their|my|your|our|un|une|le|la|les|"
    r"l'|the|an?|autre|autres|another|other|prochaine?s?|next|same|meme|these|ces|cette|ce|this)\s*)*"
    r"(?:rendez-vous|rdv|rencontres?|appointments?|meetings?|visits?|visites?|seances?|sessions?)"
    r"(?:\s+(?:suivante?s?|following|below|ci-dessous|prevue?s?|scheduled|habituelle?s?|usual))?"
    r"(?:\s*(?:no\.?|n°|#)?\s*\[?biq-?\s*\d+\]?)?$")  # "le rendez-vous BIQ-000123" names which, not why
LEADING_LENGTH = re.compile(r"\d+(?:[.,]\d+)?[- ]?(?:hours?|hrs?|minutes?|mins?|heures?|h)\b-?\s+(?=[a-z])")
# "Rencontre au 3e étage, local 3.125": where the meeting is, not why
ONLY_WHERE = re.compile(r"^\w+\s+(?:au|a|at|on|in|dans|sur)\s+(?:la\s+|le\s+|l'|the\s+)?(?:\d+\w*\s+)?"
                        r"(?:etage|floor|local|salle|bureau|room|office|porte|door|aile|wing|pavillon|building|"
                        r"batiment|sous-sol|basement|rez-de-chaussee|ground floor)\b")
SHORT_SENTENCE = re.compile(r"(?:^|(?<=[.!?]\s)|(?<=\n))([^.!?\n]{4,80})(?=[.!?]|\n|$)")


def reason(original: str, folded: str, form: dict, claimed: list[tuple[int, int]]) -> str | None:
    if "reason" in form:
        v = form["reason"][0]
        return None if not v or NOTHING.match(_f(v)) else v
    m = re.search(r"\b(?:raison|reason|motif)\s*:\s*([^\n]+?)(?:\.\s|\.$|\n|$)", folded)
    if m:
        return original[m.start(1):m.end(1)].strip() or None
    best = None
    for cue in REASON_CUE.finditer(folded):
        start = cue.end()
        lead = LEADING_LENGTH.match(folded, start)
        if lead:  # "for a 2-hour psychiatric evaluation": the length is not the reason
            start = lead.end()
        if NOT_REASON_START.match(folded[start:]):
            # "for a patient who is starting chemotherapy": skip the patient, keep what follows
            pm = re.match(r"(?:a |an |un |une )?(?:patient|patiente|usager|usagere)\s+(?:who is|qui (?:est|va|doit))\s+", folded[start:])
            if not pm:
                continue
            start += pm.end()
        phrase = _reason_phrase(original, folded, start, _phrase_end(folded, start, claimed))
        if _vague(phrase):
            # "une rencontre de 2 heures avec l'équipe": the length cut it short; read on without it
            stop = REASON_STOP_LOOSE.search(folded, start, min(len(folded), start + PHRASE_MAX))
            phrase = _reason_phrase(original, folded, start, stop.start() if stop else start + PHRASE_MAX, claimed)
            if not re.search(r"\b(?:avec|with)\b", _f(phrase)):
                continue  # "une rencontre de 1h au CLSC": where and when, still no why
        if _vague(phrase):
            continue
        if len(phrase.split()) > 12:
            continue
        best = phrase
        break
    if best:
        return best
    # a short standalone noun phrase: "Consultation en orthopédie." / "Physio sessions."
    for sm in SHORT_SENTENCE.finditer(original):
        s = sm.group(1).strip()
        f = _f(s)
        if _names_an_appointment(f):
            # the sentence without its date, time, place or language: "Rencontre d'environ 2h avec la
            # travailleuse sociale" → "Rencontre avec la travailleuse sociale"
            s2 = s[:_phrase_end(_f(s), 0, [], commas=False)]
            offset = sm.start(1) + (len(sm.group(1)) - len(sm.group(1).lstrip()))
            for a, b in sorted(((a - offset, b - offset) for a, b in claimed), reverse=True):
                if 0 < a < len(s2):
                    cut = CLAIMED_LEAD.search(s2, 0, a)
                    s2 = s2[:cut.start() if cut else a] + s2[min(b, len(s2)):]
            phrase = re.sub(r"\s{2,}", " ", TRAILING.sub("", s2)).strip(" ,:-")
            if phrase and not GENERIC_APPOINTMENT.match(_f(phrase)) and not ONLY_WHERE.match(_f(phrase)):
                return phrase
    # one item of a terse list or a parenthesis: "Dec 9 10am JGH, cardiology follow-up, 1h",
    # "for about 2 hours (endoscopy follow-up)"; a few words, no number, nothing already read
    for sm in SEGMENT.finditer(folded):
        a, b = sm.span(1)
        f = folded[a:b].strip()
        if (_names_an_appointment(f) and len(f.split()) <= 6 and not re.search(r"\d", f)
                and not any(a < y and x < b for x, y in claimed)
                and not GENERIC_APPOINTMENT.match(f) and not ONLY_WHERE.match(f)):
            return original[a:b].strip()
    return None


SEGMENT = re.compile(r"(?:^|(?<=[,;(\n])|(?<=[.!?]\s))([^,;()\n.!?]{4,70})(?=[,;)\n]|[.!?](?:\s|$)|$)")


def _names_an_appointment(f: str) -> bool:
    """'Consultation en orthopédie', 'suivi de grossesse', 'cardiology follow-up' (folded)."""
    return bool(re.match(r"^(?:consultation|rencontre|suivi|evaluation|rdv|seances?|sessions?|follow-up|physio|"
                         r"assessment|appointment|meeting|visite|atelier|examen|therapie|therapy|vaccination|"
                         r"(?:pre|post)[- ]?natal\w*|[a-z]+logie|[a-z]+logy|[a-z]+therapie|[a-z]+therapy|"
                         r"echographie|ultrasound|dialyse|dialysis|chimiotherapie|chemotherapy)\b", f)
                or (re.match(r"^[\w-]+ (?:follow-up|sessions?|assessment|appointment|consultation|consult|teaching|"
                             r"education|review|visit|check-up|checkup|screening|counselling|counseling)\b", f)
                    and not re.match(r"^(?:the|this|that|my|our|his|her|their|your|an?|le|la|les|ce|cette|mon|ma|"
                                     r"notre|same|next|last|first|second|another|usual|regular)\s", f)))


def _vague(phrase: str) -> bool:
    f = _f(phrase)
    return len(phrase) < 3 or not APPOINTMENT_NOUNS.search(f) or bool(GENERIC_APPOINTMENT.match(f))


def _reason_phrase(original: str, folded: str, start: int, end: int, claimed: list[tuple[int, int]] = ()) -> str:
    """original[start:end] without the *claimed* spans inside it (each with the words that lead
    to it: 'de 2 heures', 'au CHUM'), nor who it is for ('de M. Chen')."""
    phrase = original[start:end]
    for a, b in sorted(((a - start, b - start) for a, b in claimed if start < a < end), reverse=True):
        cut = CLAIMED_LEAD.search(phrase, 0, a)
        phrase = phrase[:cut.start() if cut else a] + phrase[min(b, len(phrase)):]
    phrase = re.sub(r"\s{2,}", " ", phrase)
    who = OF_PATIENT.search(_f(phrase))  # "rencontre de suivi de M. Chen": the why, not who
    return TRAILING.sub("", phrase[:who.start()] if who else phrase).strip(" ,:-")


PHRASE_MAX = 160  # a reason is a few words: never scan further (keeps long lines linear)


CLAIMED_LEAD = re.compile(r"(?:\s+(?:d['’]environ|environ|d['’]une durée de|d['’]une duree de|pendant|durant|for|"
                          r"about|around|à|a|at|le|on|au|aux|à la|a la|à l['’]|a l['’]|at the|in|dans|chez|en|de|du))*"
                          r"\s*$", re.I)
SENTENCE_STOP = re.compile(r"[.;!?\n]|\s-\s|\s\(")


def _phrase_end(folded: str, start: int, claimed: list[tuple[int, int]], commas: bool = True) -> int:
    limit = min(len(folded), start + PHRASE_MAX)
    m = REASON_STOP.search(folded, start, limit)
    end = m.start() if m else limit
    if not commas:  # a short sentence of its own: "Rencontre avec l'ergothérapeute, 2e étage."
        m2 = SENTENCE_STOP.search(folded, start, limit)
        end = m2.start() if m2 else limit
    for a, _b in claimed:
        if start < a < end:
            end = a
    return end


FREE_MESSAGE = re.compile(r"\b(?:(?:message|note|info|infos|information|consignes?) (?:a|pour) l'interprete|"
                          r"(?:message|note|info|instructions?) (?:for|to) the interpreter|pour l'interprete|"
                          r"for the interpreter|a l'attention de l'interprete|interpreter note)\s*:\s*([^\n]+)")
FREE_NOTES = re.compile(r"\b(?:notes? (?:au|pour le|a la|pour la) (?:coordo?n?nat(?:eur|rice)|coordination|coordo|banque)|"
                        r"message a la banque(?: d'interpretes)?|pour (?:la banque|le coordo?n?nateur|la coordo?n?natrice|"
                        r"la coordination)|notes? (?:to|for) (?:the )?(?:coordinator|coordination|bank)|"
                        r"for the (?:coordinator|bank))\s*:\s*([^\n]+)")


def free_field(original: str, folded: str, form: dict, field: str) -> str | None:
    if field in form:
        v = form[field][0]
        return None if not v or NOTHING.match(_f(v)) else v
    rx = FREE_MESSAGE if field == "message_to_interpreter" else FREE_NOTES
    m = rx.search(folded)
    if m:
        return original[m.start(1):m.end(1)].strip() or None
    return None
