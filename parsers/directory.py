"""The directory (installations, interpreters, languages, requesters, staff) and its name indexes.

The parser never talks to the store: it receives a `Directory`, built once from the CSV files of
a directory folder (the format of the bank's export) or from the store's tables, and reuses its
compiled indexes for every message.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .text import fold, plain

STOPWORDS = {"de", "du", "des", "d", "l", "la", "le", "les", "the", "of", "a"}
# Abbreviations people write in place names.
EQUIVALENT = {"st": "saint", "ste": "sainte", "mtl": "montreal", "hop": "hopital", "hosp": "hospital"}
# Words that only say what kind of place it is; stripping them gives the distinctive core.
PLACE_KINDS = {"hopital", "hospital", "clsc", "cusm", "muhc", "site", "chu", "institut", "institute",
               "clinique"}
COMMON_WORDS = {"metro", "centre", "site", "general", "sante", "nord", "ouest", "est", "sud",
                "montreal", "laval", "famille", "jeunesse", "enfants", "refugies", "cite",
                "saint", "sainte"}
# Language names that are also common words or first names: only trusted next to a cue
# ("en X", "interprète X", "X interpreter", a form field).
WEAK_LANGUAGE_WORDS = {"dan", "fon", "rom", "chin", "lai", "karen", "luba", "tigre", "kongo",
                       "ganda", "mongol", "hazara", "sango", "akan", "lao", "twi", "cri", "cree",
                       "creole", "chinese", "chinois", "romani", "lsq", "asl", "yacouba"}


@lru_cache(maxsize=128)
def tokens(text: str) -> tuple[tuple[str, int, int], ...]:
    """Folded word tokens of *text* with their offsets, stopwords dropped, abbreviations expanded.

    Cached: every index (languages, places, interpreters) looks at the same few texts.
    """
    ligatures = not text.isascii() and any(c in text for c in "œŒæÆß")
    out = []
    for m in _WORD.finditer(fold(text)):
        w = m.group()
        if ligatures:
            w = _ligatures(text[m.start():m.end()])
        if w in STOPWORDS:
            continue
        out.append((EQUIVALENT.get(w, w), m.start(), m.end()))
    return tuple(out)


_WORD = re.compile(r"\w+")


def _ligatures(word: str) -> str:
    """'Cœur' → 'coeur': ligatures expand in keys (the folded text keeps one char per char)."""
    word = word.replace("œ", "oe").replace("Œ", "oe").replace("æ", "ae").replace("Æ", "ae").replace("ß", "ss")
    return fold(word)


def key(text: str) -> tuple[str, ...]:
    return tuple(t for t, _, _ in tokens(text))


@dataclass
class Match:
    start: int
    end: int
    id: str
    variant: str


class PhraseIndex:
    """Longest-match look-up of known phrases (as token tuples) in a text."""

    def __init__(self) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}

    def add(self, phrase: tuple[str, ...], ident: str) -> None:
        if not phrase:
            return
        bucket = self._by_first.setdefault(phrase[0], [])
        if (phrase, ident) not in bucket:
            bucket.append((phrase, ident))
            bucket.sort(key=lambda p: -len(p[0]))

    def find(self, text: str) -> list[Match]:
        toks = tokens(text)
        found: list[Match] = []
        i = 0
        while i < len(toks):
            best = None
            for phrase, ident in self._by_first.get(toks[i][0], ()):
                n = len(phrase)
                if i + n <= len(toks) and tuple(t for t, _, _ in toks[i:i + n]) == phrase:
                    best = (n, ident, phrase)
                    break
            if best:
                n, ident, phrase = best
                found.append(Match(toks[i][1], toks[i + n - 1][2], ident, " ".join(phrase)))
                i += n
            else:
                i += 1
        return found


@dataclass
class Installation:
    id: str
    name: str
    aliases: list[str]
    address: str
    establishment: str


@dataclass
class Interpreter:
    id: str
    name: str
    languages: list[str]
    email: str
    telegram_id: str


@dataclass
class Language:
    code: str
    name_fr: str
    name_en: str
    aliases: list[str]


@dataclass
class Requester:
    email: str
    name: str
    installations: list[str]
    notifications: bool
    role: str


@dataclass
class Staff:
    telegram_id: str
    name: str
    email: str
    role: str


@dataclass
class Directory:
    installations: dict[str, Installation] = field(default_factory=dict)
    interpreters: dict[str, Interpreter] = field(default_factory=dict)
    languages: dict[str, Language] = field(default_factory=dict)
    requesters: dict[str, Requester] = field(default_factory=dict)
    staff: dict[str, Staff] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._built = False

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, folder: str | Path) -> Directory:
        """Read the CSV export of a directory; a missing optional file is an empty table."""
        folder = Path(folder)

        def rows(name: str) -> list[dict[str, str]]:
            path = folder / name
            if not path.exists():
                return []
            with path.open(encoding="utf-8-sig", newline="") as fh:
                return [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(fh)]

        d = cls()
        for r in rows("installations.csv"):
            d.installations[r["id"]] = Installation(r["id"], r["name"], _split(r.get("aliases")),
                                                    r.get("address", ""), r.get("establishment", ""))
        for r in rows("interpreters.csv"):
            d.interpreters[r["id"]] = Interpreter(r["id"], r["name"], _split(r.get("languages")),
                                                  r.get("email", ""), r.get("telegram_id", ""))
        for r in rows("languages.csv"):
            d.languages[r["code"]] = Language(r["code"], r.get("name_fr", ""), r.get("name_en", ""),
                                              _split(r.get("aliases")))
        for r in rows("requesters.csv"):
            d.requesters[r["email"].lower()] = Requester(
                r["email"].lower(), r.get("name", ""), _split(r.get("installations")),
                r.get("notifications", "on").lower() not in ("off", "no", "non", "0", "false"),
                r.get("role", "requester") or "requester")
        for r in rows("staff.csv"):
            d.staff[r["telegram_id"]] = Staff(r["telegram_id"], r.get("name", ""), r.get("email", ""),
                                              r.get("role", "agent"))
        return d

    # ---- indexes ---------------------------------------------------------------------------
    def build(self) -> Directory:
        """Compile the look-up indexes (once; every parse reuses them)."""
        if self._built:
            return self
        self.language_index = PhraseIndex()
        self.weak_language_index = PhraseIndex()
        self.language_words: dict[str, str] = {}
        self.language_tokens: dict[str, str] = {}  # every one-word name, short ones too ("turc")
        for lang in self.languages.values():
            for variant in {lang.name_fr, lang.name_en, *lang.aliases}:
                k = key(variant)
                if not k or (len(k) == 1 and len(k[0]) <= 3 and k[0] == lang.code):
                    continue  # "fr", "en" as codes are French words, not language mentions
                weak = len(k) == 1 and (k[0] in WEAK_LANGUAGE_WORDS or len(k[0]) <= 3)
                (self.weak_language_index if weak else self.language_index).add(k, lang.code)
                if len(k) == 1 and not weak and len(k[0]) >= 5:
                    self.language_words[k[0]] = lang.code
                if len(k) == 1 and not weak:
                    self.language_tokens[k[0]] = lang.code
        self.installation_index = PhraseIndex()
        cores: dict[tuple[str, ...], set[str]] = {}
        for inst in self.installations.values():
            for variant in {inst.name, *inst.aliases}:
                k = key(variant)
                self.installation_index.add(k, inst.id)
                core = tuple(t for t in k if t not in PLACE_KINDS)
                if core and core != k:
                    cores.setdefault(core, set()).add(inst.id)
        for core, ids in cores.items():
            if len(ids) != 1:
                continue
            if len(core) == 1 and (len(core[0]) < 4 or core[0] in COMMON_WORDS):
                continue
            if all(t in COMMON_WORDS for t in core):
                continue
            self.installation_index.add(core, next(iter(ids)))
        self.interpreter_index = PhraseIndex()
        surnames: dict[str, set[str]] = {}
        for it in self.interpreters.values():
            k = key(it.name)
            self.interpreter_index.add(k, it.id)
            if len(k) >= 3:  # "María Fernanda López" -> "María López" too
                self.interpreter_index.add((k[0], k[-1]), it.id)
            surnames.setdefault(k[-1], set()).add(it.id)
        self.interpreter_surnames = {s: next(iter(ids)) for s, ids in surnames.items() if len(ids) == 1}
        self.interpreter_names = {it.id: " ".join(key(it.name)) for it in self.interpreters.values()}
        self._built = True
        return self

    def language_name(self, code: str | None, lang: str = "fr") -> str:
        if not code:
            return ""
        rec = self.languages.get(code)
        if not rec:
            return code
        return rec.name_fr if lang == "fr" else rec.name_en


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(";") if p.strip()]


__all__ = ["Directory", "Installation", "Interpreter", "Language", "Requester", "Staff",
           "PhraseIndex", "Match", "tokens", "key", "plain"]
