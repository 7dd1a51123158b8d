"""Dates, start times and durations, French and English, anchored on the message's own date.

dateparser alone misreads common Québec phrasings ("3/12" month-first, "demain 10h" as 19:00,
"je" as jeudi when scanning a body), so the phrases are found here with compiled patterns on the
folded text, each converted to a value with explicit arithmetic, and then checked: a stated
weekday must agree with the date, a date must be in the future and within a year, two
conflicting times give no time at all. dateparser is kept for what patterns cannot know: month
names and abbreviations written in other ways (see `_month_from_dateparser`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from .text import PAST_APPOINTMENT, scanner

MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1, "january": 1,
    "fevrier": 2, "fevr": 2, "fev": 2, "february": 2, "feb": 2,
    "mars": 3, "march": 3, "mar": 3,
    "avril": 4, "avr": 4, "april": 4, "apr": 4,
    "mai": 5, "may": 5,
    "juin": 6, "june": 6, "jun": 6,
    "juillet": 7, "juil": 7, "july": 7, "jul": 7,
    "aout": 8, "august": 8, "aug": 8,
    "septembre": 9, "sept": 9, "september": 9, "sep": 9,
    "octobre": 10, "oct": 10, "october": 10,
    "novembre": 11, "nov": 11, "november": 11,
    "decembre": 12, "dec": 12, "december": 12,
}
WEEKDAYS = {
    "lundi": 0, "monday": 0, "mon": 0, "mardi": 1, "tuesday": 1, "tue": 1, "tues": 1,
    "mercredi": 2, "wednesday": 2, "wed": 2, "jeudi": 3, "thursday": 3, "thu": 3, "thurs": 3,
    "vendredi": 4, "friday": 4, "fri": 4, "samedi": 5, "saturday": 5, "sat": 5,
    "dimanche": 6, "sunday": 6, "sun": 6,
}
_LONG_WD = "|".join(sorted((w for w in WEEKDAYS if len(w) > 4), key=len, reverse=True))
_WD = "|".join(sorted(WEEKDAYS, key=len, reverse=True))
# "fri", "tues" stand for a weekday only before a time or a number ("fri at 9am", "thu 3")
_SHORT_WD = "|".join(sorted((w for w in WEEKDAYS if len(w) <= 4), key=len, reverse=True))
_WEEKDAY_WORD = rf"(?:{_LONG_WD}|(?:{_SHORT_WD})(?=\.?\s+(?:at\s+|@\s*)?\d))"
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_ORD = r"(?:er|re|e|eme|st|nd|rd|th)?"
_NOT_TIME = r"(?!\s*(?:h\b|h\d|:\d|heure|hr|am\b|pm\b|a\.m|p\.m|min))"

ISO_DATE = scanner(r"2", r"\b(20\d\d)[-/](\d{1,2})[-/](\d{1,2})(?!\d)")
DMY_DASHED = scanner(r"\d", r"(?<![\d/.-])(\d{1,2})-(\d{1,2})-(20\d\d)\b")  # "03-12-2026", day first
DAY_WORDS = {"premier": 1, "first": 1, "1er": 1, "deux": 2, "second": 2, "trois": 3, "third": 3, "quatre": 4,
             "fourth": 4, "cinq": 5, "fifth": 5, "six": 6, "sixth": 6, "sept": 7, "seventh": 7, "huit": 8,
             "eighth": 8, "neuf": 9, "ninth": 9, "dix": 10, "tenth": 10}
_DAYW = "|".join(sorted(DAY_WORDS, key=len, reverse=True))
# "le premier décembre", "the first of December", "December first"
DAY_WORD_DATE = scanner(r"dlotu" + "".join(sorted({m[0] for m in MONTHS})),
    rf"\b(?:(?:le|the|du|au|on the)\s+({_DAYW})\s+(?:de\s+|of\s+)?({_MONTH})\b\.?|({_MONTH})\.?\s+(first|second|third))\b")
NUM_DATE = scanner(r"\d", r"(?<![\d/.-])(\d{1,2})[/.](\d{1,2})(?:[/.](\d{4}|\d\d))?(?![\d/])")
DAY_MONTH = scanner(r"dfjlmstvw\d",
    rf"\b(?:({_WD})s?\.?,?\s+)?(?:(?:le|les|the)\s+)?(?<![\d:])(?<!h)(?<!h )(\d{{1,2}}){_ORD}"
    rf"((?:(?:\s*,\s*|\s+(?:et|and|&)\s+)(?:(?:{_WD})s?\s+)?(?:le\s+)?\d{{1,2}}{_ORD})*)"
    rf"\s+(?:de\s+|of\s+)?({_MONTH})\b\.?(?:,?\s+(20\d\d))?")
# "c'est le 10 et non le 9 décembre": the corrected day takes the month said after it
CORRECTED_DAY = scanner(r"lt", rf"\b(?:le|the)\s+(\d{{1,2}}){_ORD}(?=\s*,?\s*(?:et\s+|and\s+)?(?:non|pas|not)\s+(?:pas\s+)?"
                               rf"(?:le|the)\s+\d{{1,2}}{_ORD}\s+(?:de\s+|of\s+)?({_MONTH})\b)")
MONTH_DAY = scanner(r"adfjlmnostvw",
    rf"\b(?:({_WD})\.?,?\s+)?({_MONTH})\b\.?\s+(\d{{1,2}}){_ORD}\b{_NOT_TIME}(?:,?\s+(20\d\d))?"
    rf"((?:(?:\s*,\s*|\s+(?:and|&|et)\s+)\d{{1,2}}{_ORD}\b{_NOT_TIME}(?!\s*(?:-|to|till|until|a)\s*\d))*)")
RELATIVE_DAY = scanner(r"actd",
    r"\b(apres[- ]demain|the day after tomorrow|demain|tomorrow|tomorow|tmrw|tmr|aujourd'?\s?hui|today|tonight|"
    r"ce soir)\b")
# "dans 3 jours", "in two days' time": counted from the message's date (working days are not)
_FEW = {"un": 1, "une": 1, "one": 1, "a": 1, "deux": 2, "two": 2, "trois": 3, "three": 3, "quatre": 4, "four": 4,
        "cinq": 5, "five": 5, "six": 6, "sept": 7, "seven": 7}
IN_DAYS = scanner(r"di", rf"\b(?:dans|in)\s+(\d{{1,2}}|{'|'.join(_FEW)})\s+(?:jours?|days?)\b(?:'?\s*time\b)?"
                         r"(?!\s*(?:ouvrables?|ouvres|business|working|de travail|environ|or so|ou plus|or more|ou |or ))")
# "pour le 8 à 10h", "on the 8th at 10 am": a day of the month said without its month, when a
# time follows (not "le 8e étage", "the 8th floor"): the next such day
DAY_ALONE = scanner(r"lot", rf"\b(?:le|the)\s+(\d{{1,2}}){_ORD}\b(?=\s*,?\s*(?:(?:a|at|@|vers|around|des|from|de)\s+)?"
                            r"\d{1,2}\s*(?:h\b|h\d|:\d|am\b|pm\b|a\.m|p\.m))")
# a week named before its weekday: "la semaine prochaine, le mercredi", "dans deux semaines, mardi"
_TWO_WEEKS = ("the week after", "dans deux semaines", "dans 2 semaines", "in two weeks", "in 2 weeks")
_WEEK_AHEAD = "|".join(("la semaine prochaine", "next week", *_TWO_WEEKS))
WEEK_AHEAD = re.compile(rf"\b(?:{_WEEK_AHEAD}|semaine prochaine|semaine suivante|week after)\b")
WEEKDAY_PHRASE = scanner(r"cdfijlmnstvw",
    rf"\b(?:({_WEEK_AHEAD})\s*,?\s+(?:(?:le|on|the)\s+)?)?(?:(ce|cette|this|next|coming)\s+)?"
    rf"({_WEEKDAY_WORD})s?\b(?:\s+(prochain|prochaine|qui vient|de la semaine prochaine|next week|"
    rf"de la semaine suivante|in two weeks|dans deux semaines|en huit|en quinze))?"
    rf"(?:,?\s+(?:le\s+|the\s+)?(\d{{1,2}}){_ORD}\b{_NOT_TIME}(?!\s*[/.]\d)(?!\s+(?:{_MONTH})\b))?")

TIME_H = scanner(r"\d", r"(?:(?<![\d:/.,-])|(?<=\dh-)|(?<=\dh\d\d-)|(?<=(?<!\d)[7-9]-)|(?<=(?<![\d-])1\d-)"
                         r"|(?<=(?<![\d-])2[0-3]-))([01]?\d|2[0-3])\s?h\s?([0-5]\d)?(?![a-z\d])")
TIME_COLON = scanner(r"\d", r"(?<![\d:/.])([01]?\d|2[0-3])[:h]([0-5]\d)(?:\s*(a\.?\s?m\.?|p\.?\s?m\.?)(?![a-z]))?(?!\d)")
TIME_DOT = scanner(r"\d", r"(?<![\d:/.])(1[0-2]|0?[1-9])\.([0-5]\d)\s*(a\.?\s?m\.?|p\.?\s?m\.?)(?![a-z])")  # "9.30am"
TIME_AMPM = scanner(r"\d", r"(?<![\d:/.])(1[0-2]|0?[1-9])\s*(a\.?\s?m\.?|p\.?\s?m\.?)(?![a-z])")
TIME_WORD = scanner(r"mn", r"(?<!apres-)(?<!apres )(?<!avant-)(?<!avant )(?<!after)\b(midi|noon|minuit|midnight)\b"
                          r"(?:\s*(et demie?|et quart|moins (?:le )?quart|trente|quinze|quarante-cinq|[0-5]\d)\b(?!\s*(?:min|mn)))?")
# "midi et demi", "midi 30", "midi moins le quart"
_PAST_WORD = {"et demi": 30, "et demie": 30, "et quart": 15, "trente": 30, "quinze": 15, "quarante-cinq": 45,
              "moins le quart": -15, "moins quart": -15}
# "à 13 heures", "vers 13 heures 30", "à 2 heures de l'après-midi", "10 heures du matin": a time,
# where "pour 2 heures" is a duration
# "à quatorze heures trente": the hour in words
HOUR_WORDS = {"sept": 7, "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "treize": 13, "quatorze": 14, "quinze": 15,
              "seize": 16, "dix-sept": 17, "dix-huit": 18, "dix-neuf": 19, "vingt": 20, "vingt et une": 21}
_HOURW = "|".join(sorted(HOUR_WORDS, key=len, reverse=True))
TIME_HEURES = scanner(r"abdv",
    rf"\b(?:a|à|vers|des|des les|dès|at|about|around)\s+(1\d|2[0-3]|0?\d|{_HOURW})\s+heures?"
    r"(?:\s+(?:et\s+)?([0-5]\d|trente|quinze|quarante-cinq|et demie?|et quart)(?!\s*(?:min|mn)))?"
    r"(?:\s+(de l'apres-midi|de l'apres midi|du soir|du matin))?(?!\s*(?:de route|de trajet|d'avance|avant|plus tot))")
# "at 9", "at 10 o'clock": a bare hour after "at" is a morning or noon start (7 to 12); "at 2"
# could be either, so it stays unread
AT_HOUR = scanner(r"a", r"\bat (1[0-2]|[7-9])(?:\s*o'clock)?(?![\d:/h]|[.,]\d|\s*(?:o'clock\s*)?(?:am|pm|a\.m|p\.m|h\b|"
                       r"hours?|hrs?|mins?|minutes?|%|years?|ans|people|patients|[a-z]+ (?:st|street|rue|ave|avenue)\b))")
BARE_HOUR = scanner(r"\d", r"(?<![\d:/.,-])(1[0-2]|0?[1-9])(?![\d:/.,h])")
BARE_END = re.compile(r"\s*(?:-|a|to|till|until|jusqu'?\s?a)\s*(1[0-2]|[1-9])(?![\d:/a-z]|[.,]\d|\s*(?:am|pm|a\.m|p\.m|"
                      r"h\b|hours?|heures?|hrs?|min|minutes?|personnes|people|patients|ans|years?|reprises|fois|"
                      r"times|sessions|seances|[a-z]*etage|floor))")
RANGE_SEP = re.compile(r"^\s*(?:-+|a|à|to|until|till|jusqu'?\s?a|et|and)\s*$")

DURATION_HM = scanner(r"\d", r"(?<![\d:/.,-])(\d)[ \t]*(?:heures?|hours?|hrs?)[ \t]*(?:et[ \t]*|and[ \t]*)?([0-5]\d)"
                         r"(?:[ \t]*(?:minutes?|mins?|mn))?(?![\d])")
DURATION_HOURS = scanner(r"\d", r"(?<![\d:/.,-])(\d{1,2}(?:[.,]\d{1,2})?)[ \t]*(?:-[ \t]*)?(?:heures?|hours?|hrs?|h)(?![a-z\d])")
DURATION_MIN = scanner(r"\d", r"(?<![\d:/.,-])(\d{1,3})[ \t]*(?:-[ \t]*)?(?:minutes?|mins?|mn)\b")
NUMBER_WORDS = {
    "une": 1, "un": 1, "one": 1, "an": 1, "a": 1, "deux": 2, "two": 2, "trois": 3, "three": 3,
    "quatre": 4, "four": 4, "cinq": 5, "five": 5, "six": 6, "sept": 7, "seven": 7, "huit": 8, "eight": 8,
    "dix": 10, "ten": 10, "quinze": 15, "fifteen": 15, "vingt": 20, "twenty": 20,
    "vingt-cinq": 25, "twenty-five": 25, "trente": 30, "thirty": 30, "quarante": 40, "forty": 40,
    "quarante-cinq": 45, "forty-five": 45, "cinquante": 50, "fifty": 50, "soixante": 60, "sixty": 60,
    "soixante-quinze": 75, "seventy-five": 75, "quatre-vingt-dix": 90, "ninety": 90,
}
_NUMW = "|".join(sorted((re.escape(w) for w in NUMBER_WORDS), key=len, reverse=True))
DURATION_WORDS = scanner(r"a-z",
    rf"\b(?:(une demi[- ]heure|a half[- ]hour|half an hour|half-hour)|"
    rf"(?:({_NUMW})\s+(?:and a half\s+)?(heures?|hours?)(\s+(?:et\s+demie?|and a half|trente|thirty|et quart|and a quarter))?)|"
    rf"(?:({_NUMW})\s+minutes?))\b")

DURATION_QUARTERS = scanner(r"\dtaq",
    r"(?:(?<![\d/])(\d)\s*(?:1/2|½)\s*(?:heures?|hours?|hrs?|h)\b|"
    r"(?<![\d/])(\d)\s*(?:heures?|hours?|h)\s+(?:et|and a)\s+quart(?:er)?\b|"
    r"\b(?:trois quarts? d'heure|three quarters? of an hour|(?:un |a )?quart d'heure|a quarter(?: of an)? hour))")
DURATION_LABELS = ("duree", "duration", "length", "durera", "dure", "lasts")  # never "pour 8:30"
DURATION_CUES = ("duree", "duration", "pour", "environ", "approx", "approximativement", "prevoir",
                 "pendant", "about", "for", "during", "around", "durera", "dure", "lasts", "take",
                 "takes", "last", "plus ou moins", "roughly", "estimated", "prevue", "prevu")
TIME_CUES = ("a", "at", "vers", "des", "debut", "starting", "start", "starts", "commence",
             "commencera", "begins", "heure", "time", "by", "demain", "tomorrow", "matin", "soir",
             "apres-midi", "morning", "afternoon", "aujourd'hui", "today")
# "push it back by an hour", "décaler de 30 minutes", "retarder d'une heure": how far it moves, not how long
SHIFT_BEFORE = re.compile(r"\b(?:push\w*|delay\w*|postpon\w*|bring|brought|move[sd]?|moving|decal\w*|retard\w*|"
                          r"devanc\w*|recul\w*|repouss\w*)\b[^.\n]{0,25}?(?:\b(?:by|de|of)\s+|\bd')(?:une?\s+|an?\s+)?$")
TIME_TBD = re.compile(r"\b(?:(?:l')?heure (?:exacte |precise )?(?:reste )?a (?:confirmer|determiner|venir)|"
                      r"heure (?:exacte |precise )?inconnue|(?:exact |start )?time (?:tbd|tbc|to be (?:confirmed|determined)|"
                      r"unknown|to follow))\b")
WINDOW_BEFORE = re.compile(r"\b(?:entre|between)\s+$")
APPROX_BEFORE = re.compile(r"\b(?:vers|autour de|aux alentours de|around|about|approx\w*|environ)\.?\s+$")
# "add 30 minutes", "prolonger de 30 min", "30 minutes de plus": time added to a booking, not its length
EXTRA_BEFORE = re.compile(r"(?:\b(?:add|adding|ajouter|rajouter|extend|extending|prolonger|allonger)\b[^.\n]{0,12}?"
                          r"(?:\b(?:de|by|of|an?)\s+|\bd')?(?:une?\s+|an?\s+)?|\b(?:extra|another|additional|encore)\s+|"
                          r"\+\s*)$")
# "prolonger à 2h", "extend it to 2 hours": the new length, not time added
EXTEND_TO = re.compile(r"\b(?:prolong\w*|allong\w*|extend\w*|lengthen\w*)\b[^.\n]{0,20}?\b(?:a|to|jusqu'a)\s+$")
# "(with a 15 minute break)", "pause de 15 min": a pause inside the appointment, not its length
BREAK_AROUND = re.compile(r"\b(?:pause|break)\s+(?:de|of)\s+(?:une?\s+|an?\s+)?$")
EXTRA_AFTER = re.compile(r"\s*(?:de plus|supplementaires?|additionnelles?|more\b|extra\b|additional\b|longer\b|"
                         r"(?:de\s+)?(?:pause|break)\b)")
ARRIVAL_BEFORE = re.compile(r"\b(?:arriv\w*|arrival|se presenter|presentez-vous|be there|show up)\b[^.\n]{0,12}$")
REPLACED = re.compile(r"(?:au lieu d(?:es|e|u|')|plutot qu[e']|instead of|rather than|et non(?: pas)?|and not|"
                      r"pas (?:a|au|le)|not at|not on|not)\s*(?:a\s+|at\s+|de\s+|le\s+|the\s+|du\s+|)$")
CORRECTION_AFTER = re.compile(r"^\s*\(?\s*(?:non|no|oups|oops|pardon|correction|je veux dire|i mean)\b")
NOT_APPOINTMENT_AFTER = re.compile(
    r"^\s*(?:d'avance|a l'avance|en avance|avant|plus tot|early|earlier|before|beforehand|"
    r"de retard|late|later|apres|after|ago|de route|de trajet|drive|away)\b")


@dataclass
class DateMention:
    start: int
    end: int
    dates: list[date]
    uncertain: bool = False
    weekday: int | None = None
    relative: bool = False  # computed from 'demain', 'mardi prochain'… rather than written out


@dataclass
class TimeMention:
    start: int
    end: int
    minutes: int  # minutes after midnight
    duration: int | None = None  # set for ranges


@dataclass
class DurationMention:
    start: int
    end: int
    minutes: int


@dataclass
class Appointment:
    date: date | None = None
    start_time: time | None = None
    duration_minutes: int | None = None
    uncertain: list[str] = field(default_factory=list)

    def as_contract(self) -> dict:
        return {
            "date": self.date.isoformat() if self.date else None,
            "start_time": self.start_time.strftime("%H:%M") if self.start_time else None,
            "duration_minutes": self.duration_minutes,
        }


# ---- dates ------------------------------------------------------------------------------------

def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _future(day: int, month: int, year: int | None, today: date) -> date | None:
    """The date with that day and month: the stated year, else the next one not in the past."""
    if year:
        return _safe_date(year, month, day)
    cand = _safe_date(today.year, month, day)
    if cand and cand >= today - timedelta(days=1):
        return cand
    return _safe_date(today.year + 1, month, day)


def _next_weekday(today: date, wd: int, strictly_after: bool = True) -> date:
    delta = (wd - today.weekday()) % 7
    if delta == 0 and strictly_after:
        delta = 7
    return today + timedelta(days=delta)


def _year(text: str | None) -> int | None:
    if not text:
        return None
    y = int(text)
    return y + 2000 if y < 100 else y


@lru_cache(maxsize=256)
def _month_from_dateparser(word: str) -> int | None:
    """Ask dateparser for a month name the table does not know (e.g. 'déc', 'dic')."""
    try:
        import dateparser
        d = dateparser.parse(f"15 {word} 2030", languages=["fr", "en"],
                             settings={"DATE_ORDER": "DMY", "PREFER_DATES_FROM": "future",
                                       "RELATIVE_BASE": datetime(2030, 1, 1)})
    except Exception:  # noqa: BLE001
        return None
    return d.month if d and d.year == 2030 and d.day == 15 else None


def find_dates(t: str, today: date, day_first: bool = True) -> list[DateMention]:
    """Every date phrase of the folded text *t*, in order of appearance. *day_first*: a numeric
    date whose two parts could each be the month is read day first (French, Québec usage);
    without it (English, written both ways) such a date is uncertain."""
    found: list[DateMention] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    def add(m: DateMention) -> None:
        found.append(m)
        taken.append((m.start, m.end))

    for m in ISO_DATE.finditer(t):
        d = _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if d:
            add(DateMention(m.start(), m.end(), [d]))
    for m in DMY_DASHED.finditer(t):
        d = _safe_date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        if d and free(m.start(), m.end()):
            add(DateMention(m.start(), m.end(), [d]))
    for m in DAY_WORD_DATE.finditer(t):
        day, month = (DAY_WORDS[m.group(1)], MONTHS.get(m.group(2))) if m.group(1) else \
            (DAY_WORDS[m.group(4)], MONTHS.get(m.group(3)))
        d = _future(day, month, None, today) if month else None
        if d and free(m.start(), m.end()):
            add(DateMention(m.start(), m.end(), [d]))
    for m in CORRECTED_DAY.finditer(t):
        month = MONTHS.get(m.group(2))
        d = _future(int(m.group(1)), month, None, today) if month else None
        if d and free(m.start(), m.end()):
            add(DateMention(m.start(), m.end(), [d]))
    for m in DAY_MONTH.finditer(t):
        if not free(m.start(), m.end()):
            continue
        month = MONTHS.get(m.group(4)) or _month_from_dateparser(m.group(4))
        if not month:
            continue
        days = [int(m.group(2))] + [int(x) for x in re.findall(r"(\d{1,2})" + _ORD + r"(?!\d)", m.group(3) or "")]
        year = _year(m.group(5))
        dates = [_future(d, month, year, today) for d in days]
        wd = WEEKDAYS.get(m.group(1)) if m.group(1) else None
        uncertain = any(x is None for x in dates)
        dates = [x for x in dates if x]
        if wd is not None and any(x.weekday() != wd for x in dates):
            uncertain = True
        add(DateMention(m.start(), m.end(), dates, uncertain, wd))
    for m in MONTH_DAY.finditer(t):
        if not free(m.start(), m.end()):
            continue
        month = MONTHS.get(m.group(2))
        if not month:
            continue
        days = [int(m.group(3))] + [int(x) for x in re.findall(r"(\d{1,2})" + _ORD + r"(?!\d)", m.group(5) or "")]
        dates = [_future(day, month, _year(m.group(4)), today) for day in days]
        wd = WEEKDAYS.get(m.group(1)) if m.group(1) else None
        uncertain = any(x is None for x in dates)
        dates = [x for x in dates if x]
        if wd is not None and any(x.weekday() != wd for x in dates[:1]):
            uncertain = True
        add(DateMention(m.start(), m.end(), dates, uncertain, wd))
    for m in NUM_DATE.finditer(t):
        if not free(m.start(), m.end()):
            continue
        a, b, year = int(m.group(1)), int(m.group(2)), _year(m.group(3))
        day_month, month_day = 1 <= b <= 12 and 1 <= a <= 31, 1 <= a <= 12 and 1 <= b <= 31
        if not (day_month or month_day):
            continue
        # "12/15" can only be December 15; "12/8" is either order unless the language says
        either = day_month and month_day and a != b
        day, month = (a, b) if day_month else (b, a)
        before = t[max(0, m.start() - 25):m.start()]
        after = t[m.end():m.end() + 12]
        if not year and not re.search(rf"(?:\b(?:le|les|du|au|et|and|on|for|date|the|{_WD})|[,:(])\s*$", before) \
                and not re.match(r"\s*(?:a|at|,)?\s*\d{1,2}\s*(?:h|:)", after):
            continue  # "24/7", "2/3 des patients": not a date without a cue
        if "." in m.group(0) and not year:
            continue  # "2.14" is a room number
        d = _future(day, month, year, today)
        wd_m = re.search(rf"\b({_WD})\.?,?\s*(?:le\s+)?$", before)
        wd = WEEKDAYS[wd_m.group(1)] if wd_m else None
        undecided = False
        if either and not day_first:
            # in English both orders are written: day first (the network's usage) unless the stated
            # weekday, or a date soon rather than one past or many months away, says month first
            alt = _future(b, a, year, today)
            soon = [x is not None and 0 <= (x - today).days <= 183 for x in (d, alt)]
            if wd is not None:
                fit = [x for x in (d, alt) if x and x.weekday() == wd]
                d = fit[0] if len(fit) == 1 else d
            elif soon == [False, True]:
                d = alt
            else:
                undecided = soon == [False, False]  # past or many months away either way: ask
        add(DateMention(m.start(), m.end(), [d] if d else [],
                        d is None or undecided or (wd is not None and d.weekday() != wd), wd))
    for m in RELATIVE_DAY.finditer(t):
        if not free(m.start(), m.end()):
            continue
        w = m.group(1)
        offset = 2 if ("apres" in w or "after" in w) else 1 if w in ("demain", "tomorrow", "tomorow", "tmrw", "tmr") else 0
        add(DateMention(m.start(), m.end(), [today + timedelta(days=offset)], relative=True))
    for m in IN_DAYS.finditer(t):
        n = int(m.group(1)) if m.group(1).isdigit() else _FEW[m.group(1)]
        if 0 < n <= 14 and free(m.start(), m.end()):
            add(DateMention(m.start(), m.end(), [today + timedelta(days=n)], relative=True))
    for m in WEEKDAY_PHRASE.finditer(t):
        if not free(m.start(), m.end()):
            continue
        week_before, det, wd_word, after, daynum = m.groups()
        if not daynum and re.search(r"\b(?:un|a|est un|is a|c'est un|it's a)\s+$", t[max(0, m.start() - 12):m.start(3)]):
            continue  # "le 8 décembre est un mardi": a day of the week, not a date
        wd = WEEKDAYS[wd_word]
        next_week = bool(week_before) or (after is not None and "semaine" in after or after == "next week")
        prochain = after in ("prochain", "prochaine") or det in ("next",)
        coming = _next_weekday(today, wd)
        monday_next = today - timedelta(days=today.weekday()) + timedelta(days=7)
        in_next_week = monday_next + timedelta(days=wd)
        uncertain = False
        weeks_from = re.search(r"\b(?:(a|one|1)|(two|2)) weeks? from\s+$", t[max(0, m.start() - 20):m.start()])
        if after in ("en huit", "en quinze") or weeks_from:
            # "jeudi en huit", "a week from Thursday": the coming Thursday and a week; "en quinze": two
            d = coming + timedelta(days=14 if after == "en quinze" or (weeks_from and weeks_from.group(2)) else 7)
        elif after in ("in two weeks", "dans deux semaines") or week_before in _TWO_WEEKS:
            d = in_next_week + timedelta(days=7)
        elif next_week:
            d = in_next_week
        elif prochain:
            d = in_next_week
            uncertain = d != coming  # "vendredi prochain" on a Thursday: tomorrow or in 8 days?
        else:
            d = coming
            # "la semaine prochaine … mercredi": a week named apart from the weekday may move it
            uncertain = bool(WEEK_AHEAD.search(t, max(0, m.start() - 80), m.end() + 80))
        if daynum:
            # "jeudi le 3": the next Thursday that is the 3rd (Québec usage, month implied)
            n = int(daynum)
            cand = [today + timedelta(days=i) for i in range(0, 370)]
            hits = [c for c in cand if c.day == n and c.weekday() == wd]
            # "Wednesday the 8th" when the coming 8th is a Tuesday: a slip, not a date months away
            d, uncertain = (hits[0], False) if hits and (hits[0] - today).days <= 62 else (d, True)
        if not daynum and (t[m.end(3):m.end(3) + 1] == "s" or EVERY.search(t, max(0, m.start() - 12), m.start(3))):
            uncertain = True  # "tous les mardis", "every Tuesday": which ones?
        add(DateMention(m.start(), m.end(), [d], uncertain, wd, relative=not daynum))
    for m in DAY_ALONE.finditer(t):
        n = int(m.group(1))
        if not (1 <= n <= 31 and free(m.start(), m.end())):
            continue
        # "le 3 janvier à 10h et le 10 à 14h": the month of the date said before it
        before = [x.dates[-1] for x in found if x.end <= m.start() and x.dates]
        base = max([today, *before[-1:]])
        month_start = base.replace(day=1)
        months = [month_start, (month_start + timedelta(days=32)).replace(day=1)]
        months.append((months[1] + timedelta(days=32)).replace(day=1))
        d = next((x for x in (_safe_date(ms.year, ms.month, n) for ms in months) if x and x >= base), None)
        later = any(x.start >= m.end() and not x.relative for x in found)  # "le 10 … et le 3 janvier"
        add(DateMention(m.start(), m.end(), [d] if d else [], d is None or later))
    found.sort(key=lambda x: x.start)
    return _alternatives(_merge_adjacent(found, t), t)


EVERY = re.compile(r"\b(?:chaque|every|each|tous les|toutes les)\s+$")
# "le 7 ou le 8 décembre", "du 7 au 11 décembre", "Dec 7 or Dec 8", "demain ou après-demain":
# one appointment on one of several days, or a span of days: no single date to book
DAY_BEFORE = re.compile(r"(?:\b\d{1,2}(?:er|st|nd|rd|th)?\s*(?:ou|or|au|to|-|until|jusqu'au)\s*(?:le\s+|the\s+)?|"
                        r"\b(?:semaine du|week of|d'ici(?: le)?|by|before|avant(?: le)?|no later than|"
                        r"au plus tard(?: le)?)\s+)$")  # a week or a deadline, not a day
OR_BETWEEN = re.compile(r"^[^.;!?\n]{0,25}?(?<![a-z'])(?:ou|or)\s+(?:bien\s+|encore\s+)?(?:le\s+|the\s+|on\s+)?$")


BACKGROUND = re.compile(r"\b(?:avait ete|avaient ete|had been|etait prevue?|was scheduled|la derniere fois|last time)\b|"
                        + PAST_APPOINTMENT.pattern)


# "déplacé à 11h", "reporté au 10 décembre", "moved to Dec 10": what a move leads to is the new
# value, and the dates or times before it in its sentence are the old ones
MOVED_TO = re.compile(r"\b(?:deplacee?s?|reportee?s?|devancee?s?|avancee?s?|reculee?s?|changee?s?|passe|passera|"
                      r"moved|rescheduled|postponed|pushed back|brought forward|changed)\s+(?:a|au|pour|to|until)\s+"
                      r"(?:le\s+|the\s+)?$")
# "change the time from 10 am to 11 am", "on devance le rendez-vous de 14h à 13h": not a slot but a
# change, whose end is the new time
CHANGE_FROM = re.compile(
    r"(?:\b(?:change|changed|changing|move|moved|moving|reschedule|rescheduled)\s+(?:the\s+|my\s+|our\s+|it\s+|"
    r"biq[\s#-]*\d+\s+|(?:request|booking)\s+#?\d+\s+)?"
    r"(?:(?:start\s+)?time\s+|appointment\s+|meeting\s+)?from|"
    r"\b(?:time|appointment|meeting)\s+(?:changes|changed|has changed|has been changed|is changed|moves|has moved|"
    r"has been moved|was moved|is moved)\s+from|"
    r"\b(?:l'heure|le rendez-vous|le rdv|la rencontre)\s+(?:change|changera|a change|passe|passera|"
    r"(?:est|a ete) (?:devancee?|deplacee?|avancee?|reculee?))\s+de|"
    r"\b(?:changer|changeons|modifier|modifions|devancer|devance|devancons|devancez|avancer|avance|avancons|"
    r"reculer|recule|deplacer|deplace|deplacons)\s+(?:l'heure\s+(?:du\s+(?:rendez-vous|rdv)\s+)?|le rendez-vous\s+|"
    r"le rdv\s+|la rencontre\s+)?(?:de|du))\s*$")


# "commence à 10h et finit à 11h30", "begins at 10 and ends at 11:30": a start, then an end
_ENDS = (r"\b(?:finit|finira|fini|termine|terminera|se termine|se terminera|prend fin|prendra fin|ends|will end|"
         r"finishes|will finish|is over|should end|should be done|wraps up)\s+(?:vers\s+|around\s+|about\s+)?"
         r"(?:a|at|by)?\s*")
ENDS_AT = re.compile(_ENDS + "$")
UNTIL_BEFORE = re.compile(r"(?:\bjusqu'?\s?(?:a|vers)|\buntil|\btill)\s+$")
ENDS_AT_HOUR = re.compile(_ENDS + r"(1[0-2]|[1-9])(?![\d:.,h]|\s*(?:am|pm|a\.m|p\.m|h\b))")


def _start_and_end(t: str, times: list[TimeMention]) -> list[TimeMention]:
    """Join a start time and the end time said after it in its sentence into one range."""
    for i, y in enumerate(times):
        if i == 0 or not ENDS_AT.search(t, max(0, y.start - 30), y.start):
            continue
        x = times[i - 1]
        if x.duration or _sentence(t, y.start, y.end)[0] > x.start:
            continue
        end = y.minutes + (12 * 60 if y.minutes <= x.minutes < y.minutes + 12 * 60 and y.minutes < 12 * 60 else 0)
        if 0 < end - x.minutes <= 8 * 60:
            return times[:i - 1] + [TimeMention(x.start, y.end, x.minutes, end - x.minutes)] + times[i + 1:]
    for i, x in enumerate(times):  # "starts at 2 pm and should be done by 3": the end a bare hour
        stop = _sentence(t, x.start, x.end)[1]
        if x.duration or (i + 1 < len(times) and times[i + 1].start < stop):
            continue
        m = ENDS_AT_HOUR.search(t, x.end, stop)
        if m:
            end = int(m.group(1)) * 60
            end += 12 * 60 if end <= x.minutes < end + 12 * 60 else 0
            if 0 < end - x.minutes <= 8 * 60:
                return times[:i] + [TimeMention(x.start, m.end(), x.minutes, end - x.minutes)] + times[i + 1:]
    return times


def _moved(t: str, found: list[DateMention], times: list[TimeMention]) -> tuple[list[DateMention], list[TimeMention]]:
    """Drop the old dates and times of a move, keep the new ones (see MOVED_TO, CHANGE_FROM)."""
    kept_times: list[TimeMention] = []
    for i, x in enumerate(times):
        if CHANGE_FROM.search(t, max(0, x.start - 60), x.start):
            if x.duration:  # one range: "from 10 am to 11 am"
                x = TimeMention(x.start, x.end, (x.minutes + x.duration) % (24 * 60))
            elif i + 1 < len(times) and re.match(r"^\s*(?:a|to|->|=>)\s*$", t[x.end:times[i + 1].start]):
                continue  # "de 14h à 13h": two times, the second one is the new one
        kept_times.append(x)
    times = kept_times
    for y in list(times):
        move = MOVED_TO.search(t, max(0, y.start - 40), y.start)
        if move:
            a, _ = _sentence(t, y.start, y.end)
            times = [x for x in times if not a <= x.start < move.start()]
    found = [d for i, d in enumerate(found) if not (i + 1 < len(found) and _date_change(t, d, found[i + 1]))]
    for d in list(found):
        move = MOVED_TO.search(t, max(0, d.start - 40), d.start)
        just_before = next((y for y in times if y.end <= d.start and re.match(r"^\W*(?:le|on|the)?\s*$", t[y.end:d.start])),
                           None)
        if not move and just_before:  # "déplacé à 14h le 9 décembre"
            move = MOVED_TO.search(t, max(0, just_before.start - 40), just_before.start)
        if move:
            a, _ = _sentence(t, d.start, d.end)
            old = [e for e in found if a <= e.start < move.start()]
            if old:
                found = [e for e in found if e not in old]
                times = [x for x in times if not old[0].start <= x.start < move.start()]
    return found, times


SENTENCE_END = re.compile(r"[!?\n]|(?<!\bjanv)(?<!\bfev)(?<!\bfevr)(?<!\bavr)(?<!\bjuil)(?<!\bsept)(?<!\bsep)"
                          r"(?<!\boct)(?<!\bnov)(?<!\bdec)(?<!\bjan)(?<!\bfeb)(?<!\bmar)(?<!\bapr)(?<!\baug)"
                          r"\.(?=\s|$)")  # "le 8 déc. à 9h" goes on


def _sentence(t: str, start: int, end: int) -> tuple[int, int]:
    """The span of the sentence around t[start:end]."""
    a = 0
    for m in SENTENCE_END.finditer(t, max(0, start - 300), start):
        a = m.end()
    m = SENTENCE_END.search(t, end)
    return a, m.start() if m else len(t)


def _alternatives(found: list[DateMention], t: str) -> list[DateMention]:
    for i, m in enumerate(found):
        if DAY_BEFORE.search(t, max(0, m.start - 20), m.start) and not (i and _date_change(t, found[i - 1], m)):
            m.uncertain = True
        # "entre le 7 et le 9 décembre", "between Dec 7 and Dec 9": a span of days, not two bookings
        if BETWEEN_BEFORE.search(t, max(0, m.start - 15), m.start):
            nxt = found[i + 1] if i + 1 < len(found) else None
            if len(m.dates) > 1:
                m.uncertain = True
            elif nxt is not None and re.fullmatch(r"\s*(?:et|and|&)\s*", t[m.end:nxt.start]):
                m.uncertain = nxt.uncertain = True
    return found


# "change the date from Dec 8 to Dec 10", "on change la date : du 8 au 10 décembre", "moved from
# Tuesday to Thursday", "on passe de 1h à 1h30": the first value is the old one
VALUE_CHANGE_FROM = re.compile(r"\b(?:chang\w*|mov\w*|reschedul\w*|deplac\w*|report\w*|passe\w*|modif\w*|"
                              r"devanc\w*|avanc\w*|recul\w*|push\w*|postpon\w*)\b[^.\n]{0,30}?"
                              r"(?:\bfrom|\bde|\bdu|\bd')\s*(?:le\s+|the\s+)?$")
TO_BETWEEN = re.compile(r"^\s*(?:to|au|a|->|=>|vers)\s*(?:le\s+|the\s+)?$")


def _date_change(t: str, old: DateMention, new: DateMention) -> bool:
    return bool(TO_BETWEEN.match(t[old.end:new.start]) and VALUE_CHANGE_FROM.search(t, max(0, old.start - 50), old.start))


BETWEEN_BEFORE = re.compile(r"\b(?:entre|between)\s+$")


def _merge_alternatives(found: list[DateMention], t: str) -> list[DateMention]:
    """'Dec 7 or Dec 8': one appointment on either day, so one uncertain date (after the times
    were read, which the merged span would otherwise hide)."""
    out: list[DateMention] = []
    for m in found:
        if out and OR_BETWEEN.match(t[out[-1].end:m.start]):
            out[-1] = DateMention(out[-1].start, m.end, [], True, None)
            continue
        out.append(m)
    return out


def _merge_adjacent(found: list[DateMention], t: str) -> list[DateMention]:
    """'mardi prochain (24 novembre)': a relative phrase next to a written date is one date.

    The written date wins when it falls on the stated weekday; otherwise the two disagree and
    the date is uncertain. Two written dates side by side ('Dec 1, Dec 3') stay two dates.
    """
    out: list[DateMention] = []
    for m in found:
        prev = out[-1] if out else None
        if (prev is not None and prev.relative != m.relative and len(prev.dates) == 1 and len(m.dates) == 1
                and re.fullmatch(r"[\s,(\-]*", t[prev.end:m.start])):
            rel, written = (prev, m) if prev.relative else (m, prev)
            wd = rel.weekday if rel.weekday is not None else written.weekday
            same = rel.dates[0] == written.dates[0]
            agrees = same or (wd is not None and written.dates[0].weekday() == wd and not written.uncertain)
            out[-1] = DateMention(prev.start, m.end, [written.dates[0]] if agrees else [], not agrees, wd)
            continue
        out.append(m)
    return out


# ---- times and durations ------------------------------------------------------------------------

def _ampm(hour: int, marker: str | None) -> int:
    if not marker:
        return hour
    pm = marker.replace(".", "").replace(" ", "").startswith("p")
    if pm and hour < 12:
        return hour + 12
    if not pm and hour == 12:
        return 0
    return hour


def _prev_word(t: str, pos: int) -> str:
    m = re.search(r"([a-z'\-]+)[\s:,(]*$", t[max(0, pos - 30):pos])
    return m.group(1) if m else ""


def _replaced(t: str, start: int, end: int) -> bool:
    """True when the phrase is what is being replaced ('15h au lieu de 14h', '14h (non, 14h30)')."""
    if REPLACED.search(t[max(0, start - 25):start]):
        return True
    return bool(CORRECTION_AFTER.match(t[end:end + 20]))


def find_times(t: str, exclude: list[tuple[int, int]] = ()) -> tuple[list[TimeMention], list[DurationMention]]:
    """Start times (with ranges giving a duration) and durations of the folded text *t*.

    *exclude* holds the spans already read as dates, so that '2026-12-01' gives no '1 h'.
    """
    raw: list[tuple[int, int, int, str | None, bool]] = []  # start, end, minutes, ampm, has_minutes
    taken: list[tuple[int, int]] = list(exclude)

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for m in TIME_COLON.finditer(t):
        h = _ampm(int(m.group(1)), m.group(3))
        raw.append((m.start(), m.end(), h * 60 + int(m.group(2)), m.group(3), True))
        taken.append((m.start(), m.end()))
    for m in TIME_DOT.finditer(t):
        if free(m.start(), m.end()):
            raw.append((m.start(), m.end(), _ampm(int(m.group(1)), m.group(3)) * 60 + int(m.group(2)), m.group(3), True))
            taken.append((m.start(), m.end()))
    for m in TIME_AMPM.finditer(t):
        if free(m.start(), m.end()):
            raw.append((m.start(), m.end(), _ampm(int(m.group(1)), m.group(2)) * 60, m.group(2), False))
            taken.append((m.start(), m.end()))
    for m in TIME_H.finditer(t):
        if free(m.start(), m.end()):
            raw.append((m.start(), m.end(), int(m.group(1)) * 60 + int(m.group(2) or 0), None, bool(m.group(2))))
            taken.append((m.start(), m.end()))
    for m in TIME_HEURES.finditer(t):
        h = int(m.group(1)) if m.group(1).isdigit() else HOUR_WORDS[m.group(1)]
        if m.group(3) and m.group(3).startswith(("de l'apres", "du soir")) and h < 12:
            h += 12
        past = m.group(2) or "0"
        minutes = int(past) if past.isdigit() else _PAST_WORD[past]
        if free(m.start(1), m.end()) and 6 <= h <= 21:
            raw.append((m.start(1), m.end(), h * 60 + minutes, "word", True))
            taken.append((m.start(1), m.end()))
    for m in TIME_WORD.finditer(t):
        if free(m.start(), m.end()):
            v = 12 * 60 if m.group(1) in ("midi", "noon") else 0
            past = m.group(2)
            v += (int(past) if past.isdigit() else _PAST_WORD[past]) if past else 0
            raw.append((m.start(), m.end(), v % (24 * 60), "word", True))
            taken.append((m.start(), m.end()))
    for m in AT_HOUR.finditer(t):
        if free(m.start(1), m.end()):
            raw.append((m.start(1), m.end(), int(m.group(1)) * 60, "word", True))
            taken.append((m.start(1), m.end()))
    raw.sort()

    times: list[TimeMention] = []
    durations: list[DurationMention] = []
    used: set[int] = set()
    # ranges: "de 13h à 15h", "from 1 to 2:30 pm", "14h-15h30", "9:00–10:30 am"
    for i, (s2, e2, v2, mk2, _) in enumerate(raw):
        if i in used:
            continue
        for j in range(i - 1, -1, -1):
            s1, e1, v1, mk1, hm1 = raw[j]
            if j in used:
                break
            if RANGE_SEP.match(t[e1:s2]) and v1 < 6 * 60 and (mk1 or mk2) in (None, "word"):
                # "prévoir 1h à 1h30": a span of durations, not a time range from 1 a.m.
                durations += [DurationMention(a, b, v) for a, b, v in ((s1, e1, v1), (s2, e2, v2)) if 15 <= v <= 539]
                used.update({i, j})
            elif RANGE_SEP.match(t[e1:s2]):
                start_v = v1
                if mk2 and mk2 != "word" and not mk1 and v1 < 12 * 60:
                    start_v = v1 + 12 * 60 if mk2.startswith("p") and v1 + 12 * 60 < v2 else v1
                if mk2 is None and v2 <= start_v < v2 + 12 * 60 and v2 < 12 * 60:
                    v2 += 12 * 60  # "noon to 1:30", "11:30 to 1": the end is in the afternoon
                if start_v < v2 and v2 - start_v <= 12 * 60:
                    times.append(TimeMention(s1, e2, start_v, v2 - start_v))
                    used.update({i, j})
                elif v2 < start_v and start_v >= 18 * 60 and v2 + 24 * 60 - start_v <= 8 * 60:
                    times.append(TimeMention(s1, e2, start_v, v2 + 24 * 60 - start_v))  # "de 23h à 1h"
                    used.update({i, j})
            break
        else:
            # "from 1 to 2:30 pm": the first end is a bare number
            m = re.search(r"(?:\bde|\bfrom|\bentre|\bbetween)\s+(\d{1,2})\s*(?:-|a|to|till|until|et|and)\s*$",
                          t[max(0, s2 - 25):s2])
            stated = m is not None  # "from 9 to 10:30": a bare start named as such
            if not m and ((mk2 and mk2 != "word") or "h" in t[s2:e2]):  # "2-3:30pm", "10-11h"
                m = re.search(r"(?<![\d:/.,-])(\d{1,2})\s*(?:-|to|a)\s*$" if mk2 and mk2 != "word" else
                              r"(?<![\d:/.,-])(\d{1,2})-$", t[max(0, s2 - 25):s2])
                if m and not free(s2 - (len(t[max(0, s2 - 25):s2]) - m.start()), s2 - 1):
                    m = None
            if m and (mk2 is not None or "h" in t[s2:e2] or (stated and ":" in t[s2:e2])):
                h1 = int(m.group(1))
                v1 = h1 * 60
                if mk2 and mk2 != "word" and mk2.startswith("p") and h1 < 12 and v1 + 720 < v2:
                    v1 += 720
                if mk2 is None and v1 < 6 * 60:
                    continue  # "from 1 to 2:30": 1 a.m. is no appointment, 13:00 a guess
                if v1 < v2 and v2 - v1 <= 720:
                    times.append(TimeMention(s2 - (len(t[max(0, s2 - 25):s2]) - m.start()), e2, v1, v2 - v1))
                    used.add(i)
    for i, (s, e, v, mk, has_min) in enumerate(raw):
        if i in used:
            continue
        end = BARE_END.match(t, e)
        if end and v >= 6 * 60:  # "from 9:30 till 11", "de 9h30 à 11": the end is a bare hour
            end_v = int(end.group(1)) * 60
            end_v += 12 * 60 if end_v <= v < end_v + 12 * 60 else 0
            if 0 < end_v - v <= 8 * 60:
                times.append(TimeMention(s, end.end(), v, end_v - v))
                continue
        if _replaced(t, s, e):
            continue
        token = t[s:e]
        if ":" in token and mk is None and 15 <= v <= 8 * 60 + 59 and _prev_word(t, s) in DURATION_LABELS:
            durations.append(DurationMention(s, e, v))  # "durée : 01:30"
            continue
        if "h" in token and mk is None and v <= 8 * 60 and EXTEND_TO.search(t, max(0, s - 40), s):
            durations.append(DurationMention(s, e, v))  # "prolonger à 2h"
            continue
        if "h" in token and mk is None:
            prev = _prev_word(t, s)
            after = t[e:e + 20]
            as_duration = (prev in DURATION_CUES or re.match(r"^\s*(max|maximum|chaque|each|par |de rencontre|environ)", after)
                           or (prev not in TIME_CUES and v < 4 * 60 and not _after_date_word(t, s))
                           # "45 min à 1h", "30 min or 1h": the second of two durations
                           or (v < 6 * 60 and re.search(r"\d\s*(?:min|minutes?|mn|h|heures?|hours?|hrs?)\s*"
                                                       r"(?:a|to|-|ou|or)\s*$", t[max(0, s - 20):s])))
            if as_duration and v >= 15 and v <= 8 * 60 + 59:
                if not NOT_APPOINTMENT_AFTER.match(after):
                    durations.append(DurationMention(s, e, v))
                continue
            if v < 6 * 60 and not has_min:
                # no appointment starts at 1 a.m., and "à 1h" for 13h is a guess: a duration
                # after a comma ("même heure, 1h"), else nothing
                if "," in t[max(0, s - 3):s] and v >= 15 and not NOT_APPOINTMENT_AFTER.match(after):
                    durations.append(DurationMention(s, e, v))
                continue
        if v < 6 * 60 and mk is None:
            continue  # "à 1h30", "at 1:30": 1:30 a.m. is no appointment, and 13:30 would be a guess
        if ARRIVAL_BEFORE.search(t, max(0, s - 30), s):
            continue  # "arriver à 8h45", "l'usager arrive à 8h30": when to be there, not the start
        times.append(TimeMention(s, e, v))
    for rx, conv in ((DURATION_HM, lambda m: int(m.group(1)) * 60 + int(m.group(2))),
                     (DURATION_HOURS, lambda m: round(float(m.group(1).replace(",", ".")) * 60)),
                     (DURATION_MIN, lambda m: int(m.group(1)))):
        for m in rx.finditer(t):
            if any(x.start <= m.start() < x.end for x in times) or any(d.start <= m.start() < d.end for d in durations) \
                    or any(a <= m.start() < b for a, b in exclude):
                continue
            if rx is DURATION_HOURS and m.group(0).rstrip().endswith("h") and not re.search(r"[\s.,]", m.group(0)):
                continue  # "10h" alone was classified above ("1.5h" is no time)
            if NOT_APPOINTMENT_AFTER.match(t[m.end():m.end() + 20]) or _replaced(t, m.start(), m.end()):
                continue
            durations.append(DurationMention(m.start(), m.end(), conv(m)))
    for m in DURATION_QUARTERS.finditer(t) if ("quart" in t or "/2" in t or "½" in t) else ():  # "quart" ⊃ "quarter"
        if free(m.start(), m.end()) and not _replaced(t, m.start(), m.end()):
            v = (int(m.group(1)) * 60 + 30) if m.group(1) else (int(m.group(2)) * 60 + 15) if m.group(2) \
                else 45 if m.group(0).startswith(("trois", "three")) else 15
            durations = [x for x in durations if not m.start() <= x.start < m.end()]  # "1 heure" of "1 heure et quart"
            durations.append(DurationMention(m.start(), m.end(), v))
            taken.append((m.start(), m.end()))
    for m in DURATION_WORDS.finditer(t):
        if any(d.start <= m.start() < d.end for d in durations):
            continue
        if NOT_APPOINTMENT_AFTER.match(t[m.end():m.end() + 20]) or _replaced(t, m.start(), m.end()):
            continue
        if m.group(1):
            v = 30
        elif m.group(2):
            half = m.group(4) or ("and a half" in m.group(0) and " ")
            v = NUMBER_WORDS[m.group(2)] * 60 + (15 if half and "quar" in half else 30 if half else 0)
            if m.group(2) in ("a", "un") and not re.search(r"(about|environ|pour|for|durera|dure|of|d')\s*$",
                                                            t[max(0, m.start() - 12):m.start()]) and m.group(2) == "a":
                v = 60
        else:
            v = NUMBER_WORDS[m.group(5)]
        durations.append(DurationMention(m.start(), m.end(), v))
    # "vers 9h-9h30", "around 9-9:30": when it starts, give or take, not a slot
    times = [x for x in times if not (x.duration and APPROX_BEFORE.search(t, max(0, x.start - 15), x.start))]
    times.sort(key=lambda x: x.start)
    durations = sorted((x for x in durations if not SHIFT_BEFORE.search(t, max(0, x.start - 40), x.start)
                        and not (EXTRA_BEFORE.search(t, max(0, x.start - 30), x.start)
                                 and not EXTEND_TO.search(t, max(0, x.start - 40), x.start))
                        and not BREAK_AROUND.search(t, max(0, x.start - 20), x.start)
                        and not EXTRA_AFTER.match(t, x.end)), key=lambda x: x.start)
    return times, durations


def _after_date_word(t: str, pos: int) -> bool:
    before = t[max(0, pos - 40):pos]
    return bool(re.search(rf"(?:\b(?:{_WD}|{_MONTH}|demain|tomorrow|aujourd'hui|today)\b|\d{{4}}|\d{{1,2}}/\d{{1,2}})\.?,?\s*(?:a\s+|at\s+|le\s+)?$", before))


# ---- assembling appointments ----------------------------------------------------------------------

def appointments(t: str, today: date, day_first: bool = True) -> tuple[list[Appointment], list[tuple[int, int]]]:
    """Appointments stated in the folded text *t*, and the spans the date/time phrases cover
    (*day_first*: see `find_dates`)."""
    found = find_dates(t, today, day_first)
    times, durations = find_times(t, [(d.start, d.end) for d in found])
    spans = [(d.start, d.end) for d in found] + [(x.start, x.end) for x in times] + [(x.start, x.end) for x in durations]
    found, times = _moved(t, found, _start_and_end(t, times))
    times = [x for x in times if not (x.duration and _replaced(t, x.start, x.end))]  # "au lieu de 9h à 10h"
    durations = [x for i, x in enumerate(durations)  # "on passe de 1h à 1h30": the new length only
                 if not (i + 1 < len(durations) and TO_BETWEEN.match(t[x.end:durations[i + 1].start])
                         and VALUE_CHANGE_FROM.search(t, max(0, x.start - 50), x.start))]
    # "prolonger jusqu'à 14h", "finira à 11h30": an end said alone is no start
    times = [x for x in times if x.duration or not (UNTIL_BEFORE.search(t, max(0, x.start - 15), x.start)
                                                    or ENDS_AT.search(t, max(0, x.start - 30), x.start))]
    if TIME_TBD.search(t):  # "heure exacte à confirmer": whatever time is written is not the start
        times = []
    # "entre 13h et 16h, la rencontre dure 1h": a window to book in, not the slot
    times = [x for x in times if not (x.duration and WINDOW_BEFORE.search(t, max(0, x.start - 12), x.start)
                                      and any(d.minutes < x.duration for d in durations))]
    # "le 9 à 15h, au lieu du 8 décembre à 14h": the replaced date and what follows it in its clause
    dates: list[DateMention] = []
    for i, d in enumerate(found):
        if not _replaced(t, d.start, d.end):
            dates.append(d)
            continue
        stop = re.compile(r"[.;!?\n]").search(t, d.end - (t[d.end - 1] == "."))  # "8 déc." may end a sentence
        end = min(found[i + 1].start if i + 1 < len(found) else len(t), stop.start() if stop else len(t))
        times = [x for x in times if not d.start <= x.start < end]
        durations = [x for x in durations if not d.start <= x.start < end]
    if len(dates) > 1:  # "le rdv du 1er décembre avait été annulé": told as background, not asked for
        told = [(a, b) for a, b in (_sentence(t, d.start, d.end) for d in dates) if BACKGROUND.search(t, a, b)]
        kept = [d for d in dates if not any(a <= d.start < b for a, b in told)]
        if kept:
            dates = kept
            times = [x for x in times if not any(a <= x.start < b for a, b in told)]
            durations = [x for x in durations if not any(a <= x.start < b for a, b in told)]
    dates = _merge_alternatives(dates, t)
    # a date phrase that is also a time range/number (e.g. '10/12' vs '10h'): dates win
    if not dates and not times and not durations:
        return [], spans
    groups: list[tuple[DateMention | None, int, int]] = []
    if dates:
        for i, d in enumerate(dates):
            start = 0 if i == 0 else d.start
            end = dates[i + 1].start if i + 1 < len(dates) else len(t)
            groups.append((d, start, end))
    else:
        groups.append((None, 0, len(t)))

    result: list[Appointment] = []
    per_group: list[tuple[list[date] | None, bool, set[int], set[int]]] = []
    for d, start, end in groups:
        ts = {x.minutes for x in times if start <= x.start < end}
        ds = {x.duration for x in times if start <= x.start < end and x.duration}
        ds |= {x.minutes for x in durations if start <= x.start < end}
        per_group.append((d.dates if d else None, bool(d and d.uncertain), ts, ds))
    all_ts = set().union(*(g[2] for g in per_group))
    all_ds = set().union(*(g[3] for g in per_group))
    seen: set[tuple[date, time | None]] = set()  # the same day at another time is another booking
    for dlist, uncertain, ts, ds in per_group:
        if not ts and len(all_ts) == 1:
            ts = set(all_ts)
        if not ds and len(all_ds) == 1:
            ds = set(all_ds)
        start_time = time(*divmod(next(iter(ts)), 60)) if len(ts) == 1 else None
        duration = next(iter(ds)) if len(ds) == 1 else None
        flags = []
        if len(ts) > 1:
            flags.append("time")
        if len(ds) > 1:
            flags.append("duration")
        if duration is not None and not (15 <= duration <= 8 * 60):
            flags.append("duration")
        if dlist is None:
            result.append(Appointment(None, start_time, duration, flags))
            continue
        if uncertain or not dlist:
            result.append(Appointment(None, start_time, duration, flags + ["date"]))
            continue
        for dd in dlist:
            if (dd, start_time) in seen or (start_time is None and any(day == dd for day, _ in seen)):
                continue
            seen.add((dd, start_time))
            result.append(Appointment(dd, start_time, duration, list(flags)))
    return result, spans
