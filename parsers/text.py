"""Text normalisation shared by every extractor.

Matching is done on a *folded* copy of the text (lower case, no accents, typographic quotes and
dashes made plain) that keeps the same length as the original, so that a span found in the folded
text points at the same characters in the original.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_SAME_LENGTH = str.maketrans({
    "\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": "-", "\u2014": "-", "\u2012": "-", "\u2212": "-", "\u2011": "-", "\u2010": "-",
    "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " ", "\t": " ",
    "\u0153": "o", "\u0152": "o", "\u00e6": "a", "\u00c6": "a", "\u00df": "s",
    "\u00b0": "o", "\u00ba": "o",
})


def fold_char(c: str) -> str:
    """Fold one character to lower-case ASCII-ish, always one character long."""
    c = c.translate(_SAME_LENGTH)
    d = unicodedata.normalize("NFKD", c)
    base = "".join(ch for ch in d if not unicodedata.combining(ch))
    if len(base) != 1:
        return c.lower() if len(c.lower()) == 1 else " "
    low = base.lower()
    return low if len(low) == 1 else base


def scanner(first: str, pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile *pattern*, told that every match starts with a character of the class *first*.

    Python's regex engine tries a pattern that opens with a look-behind, a word boundary or an
    optional group at every position of the text; with a leading look-ahead on a character
    class it skips straight to the candidates. Same matches, two to three times faster on the
    patterns that scan a whole message (the tests compare both forms)."""
    SCANNERS.append((first, pattern, flags))
    return re.compile(f"(?=[{first}])(?:{pattern})", flags)


SCANNERS: list[tuple[str, str, int]] = []  # every (first, pattern, flags) given to `scanner`


class _FoldTable(dict):
    """Code point -> folded character, filled as characters are met (str.translate asks it).

    Bounded: past 50,000 entries a hostile message's new characters are folded but not kept."""

    def __missing__(self, code: int) -> str:
        folded = fold_char(chr(code))
        if len(self) < 50_000:
            self[code] = folded
        return folded


_FOLD_TABLE = _FoldTable()
_RECENT: dict[str, str] = {}  # the parser folds the same body several times (quotes, then fields)
_RECENT_MAX = 16
_RECENT_LONGEST = 20_000  # bounds the memory it holds


def fold(text: str) -> str:
    """Lower-case, accent-free copy of *text* with exactly the same length."""
    if text.isascii():
        return text.lower().replace("`", "'").replace("\t", " ")
    folded = _RECENT.get(text)
    if folded is None:
        folded = text.translate(_FOLD_TABLE)
        if len(text) <= _RECENT_LONGEST:
            if len(_RECENT) >= _RECENT_MAX:
                _RECENT.clear()
            _RECENT[text] = folded
    return folded


def plain(text: str) -> str:
    """Fold and collapse punctuation to single spaces: the key used for name look-ups."""
    return " ".join(re.sub(r"[^\w]+", " ", fold(text)).split())


def clean_typography(text: str) -> str:
    """Original text with non-breaking spaces and odd line breaks made plain (keeps accents)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u200b", "")


@dataclass(frozen=True)
class Span:
    """A piece of the current text that an extractor has claimed."""

    start: int
    end: int
    kind: str
    value: object = None

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


SENTENCE_END = re.compile(r"[.!?;\n]")
# an appointment before this one: "la rencontre précédente du 1er décembre", "the previous appointment"
PAST_APPOINTMENT = re.compile(
    r"\b(?:(?:rencontre|rendez-vous|rdv|seance|consultation|appointment|meeting|session|visit)s?\s+"
    r"(?:precedente?s?|anterieure?s?|passee?s?|d'avant|du mois dernier|de la semaine (?:derniere|passee))|"
    r"(?:previous|prior|earlier|last|past)\s+(?:appointment|meeting|session|visit)|"
    r"(?:ancien|ancienne|dernier|derniere)\s+(?:rendez-vous|rdv|rencontre|seance))\b")


def sentence_bounds(text: str, pos: int) -> tuple[int, int]:
    """Start and end of the sentence (or line) around *pos*."""
    start = pos
    while start > 0 and not SENTENCE_END.match(text[start - 1]):
        start -= 1
    m = SENTENCE_END.search(text, pos)
    return start, (m.start() if m else len(text))
