"""Property-based tests: no input string or byte sequence makes the reader or the parser raise."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.mime import read_email
from parsers.request import parse_email, parse_text, parse_update

WORDS = st.sampled_from([
    "interprète", "arabe", "le", "3", "décembre", "à", "13h30", "1h30", "de", "9h", "midi", "demain",
    "mardi", "prochain", "BIQ-", "#", "annuler", "au", "CLSC", "HMR", "Mme", "Nowak", "514-555-0101", "/",
    "12/03", "2026-12-03", "from", "to", "pm", "et", "non", "au lieu de", "\n", "> ", "De :", "Envoyé :",
    "----- Forwarded message -----", "Emplacement :", "Durée :", "ø", "\u00a0", "\x00", "é", "\u202e",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WORDS, max_size=60).map(" ".join))
def test_parse_text_never_raises_on_request_like_text(directory, text):
    out = parse_text(directory, text, today=date(2026, 11, 20)).as_contract()
    json.dumps(out)
    for a in out["appointments"]:
        if a["duration_minutes"] is not None:
            assert a["duration_minutes"] > 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000))
def test_parse_text_never_raises_on_any_text(directory, text):
    parse_text(directory, text, today=date(2026, 11, 20))


HEADERS = st.sampled_from([
    b"From: a@b.c\r\n", b"From: =?utf-8?q?=E9?= <x@y>\r\n", b"Subject: =?bogus?b?AAAA?=\r\n",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n", b"Content-Type: text/plain; charset=x-unknown\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Date: not a date\r\n", b"Auto-Submitted: auto-replied\r\n", b"Return-Path: <>\r\n", b"To: ;;;\r\n",
    b"Content-Type: text/html\r\n", b"\r\n--b\r\n", b"\r\n--b--\r\n", b"Message-ID: <\r\n",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(HEADERS, st.binary(max_size=200)), max_size=30).map(b"".join))
def test_email_reader_and_parser_never_raise_on_bytes(directory, raw):
    read_email(raw)
    parsed, _ = parse_email(directory, raw)
    json.dumps(parsed.as_contract())


def test_deep_mime_nesting_and_huge_headers_do_not_raise(directory):
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i) for i in range(3000))
    parse_email(directory, b"From: a@b.c\r\n" + deep)
    huge = b"Subject: " + b"x" * 2_000_000 + b"\r\nFrom: a@b.c\r\n\r\nbody"
    parsed, mail = parse_email(directory, huge)
    assert len(mail.subject) <= 998


def test_zip_bomb_like_html_is_bounded(directory):
    html = b"<div>" * 200_000 + b"interprete arabe" + b"</div>" * 200_000
    raw = b"From: a@b.c\r\nContent-Type: text/html\r\n\r\n" + html
    parse_email(directory, raw)


@given(st.dictionaries(st.sampled_from(["message", "update_id", "edited_message"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=50),
                                 st.fixed_dictionaries({"text": st.text(max_size=300), "date": st.integers(0, 2**33)}))))
@settings(max_examples=200, deadline=None)
def test_telegram_update_reader_never_raises(directory, data):
    parse_update(directory, data)


def test_chat_commands_never_raise_on_any_input(tmp_path_factory):
    """Fuzz the Telegram command handling: any command word, any argument text, staff or not."""
    from hypothesis import HealthCheck as HC
    from hypothesis import given as given_
    from hypothesis import settings as settings_

    from bot.chat_commands import ChatCommands
    from bot.pipeline import Pipeline
    from bot.setup import prepare_store
    from store.db import Store

    from .conftest import make_settings
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'f.db'}"
    cfg = make_settings(url, "dir:/tmp/biq-fuzz-unused")
    store = Store(url)
    prepare_store(store, cfg)
    commands = ChatCommands(store, Pipeline(store, cfg))
    words = st.sampled_from(["offer", "show", "accept", "decline", "cancel", "complete", "unfilled", "comm", "search",
                             "link", "verify", "mine", "notifications", "pending", "help", "start", "x"])

    @settings_(max_examples=150, deadline=None, suppress_health_check=[HC.too_slow, HC.function_scoped_fixture])
    @given_(words, st.text(max_size=200), st.sampled_from([600000001, 700000001, 1]))
    def run(command, args, user):
        answer = commands.handle(update_id=None, user_id=user, chat_id=user, command=command, args=args)
        assert isinstance(answer.text, str)

    run()
    store.dispose()


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fold_keeps_the_length_and_answers_the_same_twice(text):
    """Spans found in the folded text must point at the original's characters, and a text
    folded again (the parser folds a body several times) must come back the same."""
    from parsers.text import fold
    first = fold(text)
    assert len(first) == len(text)
    assert fold(text) == first
    assert fold("".join(text)) == first  # an equal string, another object


def test_fold_keeps_only_a_few_recent_texts():
    from parsers import text as t
    for i in range(200):
        t.fold(f"Réunion n° {i} à l'hôpital")
    assert len(t._RECENT) <= t._RECENT_MAX
    long = "é" * (t._RECENT_LONGEST + 1)
    assert t.fold(long) == "e" * len(long) and long not in t._RECENT
    assert t.fold("Ça ÉTÉ Œuvre") == "ca ete ouvre"


def _scanner_words() -> list[str]:
    """The words, numbers and signs the scanning patterns look for, to build texts from."""
    import re

    import parsers.entities  # noqa: F401 - registers their scanners
    import parsers.intent  # noqa: F401
    import parsers.quotes  # noqa: F401
    import parsers.when  # noqa: F401
    from parsers.text import SCANNERS
    words = {w for _, pattern, _ in SCANNERS for w in re.findall(r"[a-z']{2,}", pattern)}
    return sorted(words) + ["1", "3", "9", "10", "12", "14", "23", "30", "45", "2026", "2027", "0514", "555",
                            "h", ":", "/", ".", "-", "#", "(", ")", "+1", ",", "\n", ">", "> ", "--", "___", "*"]


@given(st.lists(st.sampled_from(_scanner_words()), max_size=30), st.lists(st.sampled_from([" ", "", "\n", ", "]),
                                                                         min_size=30, max_size=30))
@settings(max_examples=400, deadline=None)
def test_scanners_find_what_their_plain_patterns_find(words, seps):
    """`scanner` only tells the regex engine where a match can start: every match, with its
    groups, must be the same as the plain pattern's (a wrong first-character class loses dates)."""
    import re

    from parsers.text import SCANNERS, scanner
    text = "".join(w + s for w, s in zip(words, seps, strict=False))
    for first, pattern, flags in list(SCANNERS):
        plain, fast = re.compile(pattern, flags), scanner(first, pattern, flags)
        SCANNERS.pop()
        assert [(m.span(), m.groups()) for m in fast.finditer(text)] == \
               [(m.span(), m.groups()) for m in plain.finditer(text)], pattern[:60]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=120),
       st.sampled_from(["", "[BIQ-000123] ", "Re: [BIQ-004567] "]))
@settings(max_examples=300, deadline=None)
def test_reply_subjects_are_encoded_losslessly_on_short_lines(text, prefix):
    """Whatever a template puts in a subject: it reads back the same, in lines of at most 76
    characters (with 'Subject: ', RFC 2047), in plain ASCII."""
    from email.header import decode_header, make_header

    from bot.replies import _subject, one_line
    value = one_line(prefix + text, 900)
    encoded = _subject(value)
    assert encoded.isascii()
    lines = ("Subject: " + encoded).split("\r\n")
    assert all(len(line) <= 76 for line in lines if "=?" in line) and "\n" not in encoded.replace("\r\n", "")
    assert " ".join(str(make_header(decode_header(encoded))).split()) == " ".join(value.split())


def _dsn(recipient_blocks: str) -> bytes:
    return ("From: MAILER-DAEMON@relay.example\r\nTo: biq@ssss.gouv.qc.ca\r\nSubject: Undelivered\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
            "--B\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example\r\n\r\n"
            f"{recipient_blocks}--B--\r\n").encode()


def test_bounce_status_is_read_from_the_first_recipient_block():
    mail = read_email(_dsn("Final-Recipient: rfc822; a@x.example\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n"
                           "Final-Recipient: rfc822; b@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"))
    assert mail.is_report and mail.dsn_status == "4.4.1"


def test_bounce_status_is_found_in_a_malformed_recipient_block():
    """A diagnostic whose continuation lines are not indented ends the block's headers: the
    status that follows is still found (the block is searched as text)."""
    mail = read_email(_dsn("Final-Recipient: rfc822; a@x.example\r\n"
                           "Diagnostic-Code: smtp; 550-Please authenticate\r\n550 relay denied\r\n"
                           "Status: 5.7.1\r\nAction: failed\r\n\r\n"))
    assert mail.dsn_status == "5.7.1"


def test_an_out_of_office_without_headers_is_never_answered(directory):
    """Some servers mark their absence notices only in the subject; answering one starts a loop."""
    raw = (b"From: Julie Roy <julie.roy.ccomtl@ssss.gouv.qc.ca>\r\nTo: biq@ssss.gouv.qc.ca\r\n"
           b"Subject: =?utf-8?q?R=C3=A9ponse_automatique_=3A_Demande?=\r\nDate: Wed, 25 Nov 2026 10:00:00 -0500\r\n"
           b"Message-ID: <ooo1@example.org>\r\n\r\n"
           b"Je suis absente jusqu'au 7 decembre. Interprete en arabe le 8 decembre a 10h? Voir Marie.\r\n")
    parsed, mail = parse_email(directory, raw)
    assert mail.is_automatic and mail.automatic_reason == "auto-reply subject"
    assert parsed.intent == "other"


@pytest.mark.parametrize("headers,reason", [
    (b"From: neko-admin@example.co.jp\r\nX-MLServer: fml [fml 4.0.3]\r\nSubject: Loop Alert: Duplicated Message-ID\r\n",
     "automatic sender neko-admin@example.co.jp"),
    (b"From: Team <team@lists.example.org>\r\nList-Unsubscribe: <mailto:leave@lists.example.org>\r\n"
     b"Subject: Newsletter\r\n", "list-unsubscribe"),
    (b"From: helpdesk@example.org\r\nX-Loop: helpdesk@example.org\r\nSubject: Re: ticket\r\n", "x-loop"),
    (b"From: interpretes-request@lists.example.org\r\nSubject: confirm 1234\r\n",
     "automatic sender interpretes-request@lists.example.org"),
])
def test_mailing_list_robots_and_loops_are_never_answered(directory, headers, reason):
    """Request Tracker and Mailman recognise list traffic by its sender and headers: a reply to a list
    robot, or to a message that already went round once, is how mail loops start."""
    raw = headers + (b"To: biq@ssss.gouv.qc.ca\r\nMessage-ID: <loop1@example.org>\r\n\r\n"
                     b"Interprete en arabe le 8 decembre a 10h au CLSC Metro.\r\n")
    parsed, mail = parse_email(directory, raw)
    assert mail.automatic_reason == reason
    assert parsed.intent == "other"
