"""Extractor tests on phrasings of our own (French and English), including the known traps."""

from __future__ import annotations

from datetime import date

import pytest

from parsers.quotes import personal_names, strip_signature
from parsers.request import parse_email, parse_text

FRI = date(2026, 11, 20)  # a Friday, like the reference date
MON = date(2026, 11, 16)
THU = date(2026, 11, 19)


def p(directory, text, today=FRI, **kw):
    return parse_text(directory, text, today=today, **kw).as_contract()


def appts(directory, text, today=FRI, **kw):
    return [(a["date"], a["start_time"], a["duration_minutes"]) for a in p(directory, text, today, **kw)["appointments"]]


@pytest.mark.parametrize("text,expected", [
    ("Interprète espagnol mardi prochain à 14h30, 1h.", [("2026-11-24", "14:30", 60)]),
    ("Interprète arabe le 3/12 à 13 h 30 pour 1 h.", [("2026-12-03", "13:30", 60)]),
    ("Interprète arabe 3/12 à 13 h 30, 90 min.", [("2026-12-03", "13:30", 90)]),
    ("Besoin d'un interprète en russe demain 10h, 45 min.", [("2026-11-21", "10:00", 45)]),
    ("Interprète tamoul le 2026-12-03 à 9h00, durée 2 heures.", [("2026-12-03", "09:00", 120)]),
    ("Interprète tamoul le 3 déc. à 9 h, durée 1 heure 30.", [("2026-12-03", "09:00", 90)]),
    ("Interprète en farsi le jeudi 10 décembre en après-midi, 13h30, pour une heure.", [("2026-12-10", "13:30", 60)]),
    ("Interprète swahili le 8 décembre de midi à 13h.", [("2026-12-08", "12:00", 60)]),
    ("Interprète somali le 8 décembre, 13h-14h30.", [("2026-12-08", "13:00", 90)]),
    ("Interprète somali le 8 décembre de 9 h à 11 h.", [("2026-12-08", "09:00", 120)]),
    ("Interprète hindi les 1er, 8 et 15 décembre à 10h, 1h chaque fois.",
     [("2026-12-01", "10:00", 60), ("2026-12-08", "10:00", 60), ("2026-12-15", "10:00", 60)]),
    ("Interprète pour une demi-heure le 9 décembre à 8h.", [("2026-12-09", "08:00", 30)]),
    ("Interprète en ourdou le 9 décembre à 8 h, une heure et demie.", [("2026-12-09", "08:00", 90)]),
    ("Interprète le 9 décembre à 8h pour quarante-cinq minutes.", [("2026-12-09", "08:00", 45)]),
    ("Interpreter needed on Dec 3rd at 2:30 pm for 90 minutes.", [("2026-12-03", "14:30", 90)]),
    ("Interpreter needed on the 3rd of December at 2 p.m., about an hour.", [("2026-12-03", "14:00", 60)]),
    ("Interpreter needed this Thursday between 2 and 3 pm.", [("2026-11-26", "14:00", 60)]),
    ("Interpreter needed on December 3, 2026 from 9 a.m. to noon.", [("2026-12-03", "09:00", 180)]),
    ("Interpreter on Dec 1, 8 and 15 at 9:00, one hour each.",
     [("2026-12-01", "09:00", 60), ("2026-12-08", "09:00", 60), ("2026-12-15", "09:00", 60)]),
    ("Interprète en arabe le 10 janvier à 10h, 1h.", [("2027-01-10", "10:00", 60)]),
    ("Interprète aujourd'hui à 15 h, 30 minutes.", [("2026-11-20", "15:00", 30)]),
    ("Interprète arabe le 2 décembre à 9 h 30 et le 9 décembre à 14 h, 1 h chaque fois.",
     [("2026-12-02", "09:30", 60), ("2026-12-09", "14:00", 60)]),
    ("Interprète tamoul pour le 4 décembre prochain à 10h30. La rencontre durera environ 1h.",
     [("2026-12-04", "10:30", 60)]),
    ("Please book a Romanian interpreter for Dec 14 at 3 pm, 1.5 hours.", [("2026-12-14", "15:00", 90)]),
    ("Interprète lingala le 9 décembre, 10h-11h, au CLSC.", [("2026-12-09", "10:00", 60)]),
    ("Interprète lingala le 9 décembre, 9h30-11h.", [("2026-12-09", "09:30", 90)]),
    # a week named before the weekday moves it (said on Friday 20 Nov)
    ("Interprète la semaine prochaine, le mercredi à 14h, 1h.", [("2026-11-25", "14:00", 60)]),
    ("Interprète dans deux semaines, le mardi, à 14h. 1h.", [("2026-12-01", "14:00", 60)]),
    ("Interpreter in two weeks on Tuesday at 2 pm, 1 hour.", [("2026-12-01", "14:00", 60)]),
    # compact ranges from a bare number; abbreviated weekdays before a time
    ("Need Arabic interp Thursday Dec 3 2-3:30pm JGH in person", [("2026-12-03", "14:00", 90)]),
    ("Interpreter Dec 3, 2-3pm.", [("2026-12-03", "14:00", 60)]),
    ("Interprète le 3 déc. 10-11h.", [("2026-12-03", "10:00", 60)]),
    ("Interprète le 3 déc., durée 1-2h, à 10h.", [("2026-12-03", "10:00", None)]),
    ("somali interpreter fri at 9am, phone, 30 mins", [("2026-11-27", "09:00", 30)]),
    ("Interpreter tues 9:30am, 1 hour.", [("2026-11-24", "09:30", 60)]),
    # "avant-midi" is no noon; a span of durations is no time range; quarters and halves of hours
    ("Interprète le jeudi 3 décembre en avant-midi, 9h, pour deux heures.", [("2026-12-03", "09:00", 120)]),
    ("Interprète le 3 décembre à 9h30, prévoir 1h à 1h30.", [("2026-12-03", "09:30", None)]),
    ("Interprète le 3 décembre à 15h15 pour trois quarts d'heure.", [("2026-12-03", "15:15", 45)]),
    ("Interpreter Thurs., Dec. 3 at 10 o'clock, 1 1/2 hours.", [("2026-12-03", "10:00", 90)]),
    # "at 9" is 9 a.m.; "at 2" could be either; "at 9 Main Street" is an address
    ("Interpreter on Thursday the 3rd at 9, 2 hours.", [("2026-12-03", "09:00", 120)]),
    ("Interpreter on Dec 3 at 2, 1 hour.", [("2026-12-03", None, 60)]),
    ("Interpreter on Dec 3 at 9 Main Street, 1 hour.", [("2026-12-03", None, 60)]),
    # a range ending on a bare hour, or crossing noon without am/pm
    ("Portuguese interpreter on Dec 11 from 9:30 till 11?", [("2026-12-11", "09:30", 90)]),
    ("Interprète le 2 décembre de 9h30 à 11.", [("2026-12-02", "09:30", 90)]),
    ("Spanish interpreter, Wed Dec 2, noon to 1:30, in person.", [("2026-12-02", "12:00", 90)]),
    ("Interprète le 2 décembre à 14h - 3e étage.", [("2026-12-02", "14:00", None)]),
    ("Interpreter Dec 2 at 10:00 - 3 patients.", [("2026-12-02", "10:00", None)]),
    # "à 13 heures", "2 heures de l'après-midi"; "et quart", "and a half"; "durée : 01:30"
    ("Interprète arabe le 8 déc à 13 heures pour deux heures et demie.", [("2026-12-08", "13:00", 150)]),
    ("Interprète arabe le 8 déc à 13 heures 30, 1 heure et quart.", [("2026-12-08", "13:30", 75)]),
    ("Interprète arabe le 8 déc à 2 heures de l'après-midi, une heure maximum.", [("2026-12-08", "14:00", 60)]),
    ("Interprète arabe le 8 déc à 14h. La clinique est à 2 heures de route.", [("2026-12-08", "14:00", None)]),
    ("Interpreter Dec 8 at 1 pm, an hour and a quarter.", [("2026-12-08", "13:00", 75)]),
    ("Interpreter Dec 8 at 2pm for two and a half hours.", [("2026-12-08", "14:00", 150)]),
    ("Interprète arabe le 8 déc à 14h, durée : 01:30.", [("2026-12-08", "14:00", 90)]),
    ("Interprète le 8 déc, rendez-vous pour 8:30.", [("2026-12-08", "08:30", None)]),
    # days in words, dashed and slashed numeric dates
    ("Interprète arabe le premier décembre à 10h.", [("2026-12-01", "10:00", None)]),
    ("Interpreter Arabic on the first of December at 10am.", [("2026-12-01", "10:00", None)]),
    ("Interprète arabe le 03-12-2026 à 10h.", [("2026-12-03", "10:00", None)]),
    ("Interprète arabe le 2026/12/03 à 10h.", [("2026-12-03", "10:00", None)]),
    # a week or a deadline is no day
    ("Interprète arabe pour la semaine du 7 décembre.", [(None, None, None)]),
    ("Interprète arabe au plus tard le 7 décembre à 10h.", [(None, "10:00", None)]),
    ("Interpreter Dec 8 at 9.30am, 1 hour.", [("2026-12-08", "09:30", 60)]),
    ("Interpreter Dec 8 at 9.30, 1 hour.", [("2026-12-08", None, 60)]),   # a dot without am/pm: no time
    # when to be there is not when it starts
    ("Interprète arabe le 8 déc à 9h (arriver à 8h45), 1h.", [("2026-12-08", "09:00", 60)]),
    ("Interpreter Arabic Dec 8 at 9 am, please arrive at 8:45 am.", [("2026-12-08", "09:00", None)]),
])
def test_dates_times_durations(directory, text, expected):
    assert appts(directory, text) == expected


@pytest.mark.parametrize("text", [
    "Interprète arabe le jeudi 5 décembre de 13h à 15h.",       # 5 Dec 2026 is a Saturday
    "Interprète arabe vendredi prochain à 10h, 1h.",             # said on Thursday: tomorrow or in 8 days?
])
def test_uncertain_dates_are_null(directory, text):
    got = appts(directory, text, today=THU)
    assert got and all(a[0] is None for a in got)


def test_a_week_named_apart_from_a_bare_weekday_makes_it_uncertain(directory):
    # said on Monday 16 Nov: "mercredi" alone is the 18th, but the week named before may mean the 25th
    assert appts(directory, "Rendez-vous la semaine prochaine. Mercredi à 14h, 1h.", today=MON) == [(None, "14:00", 60)]
    assert appts(directory, "Interprète mercredi à 14h, 1h.", today=MON) == [("2026-11-18", "14:00", 60)]
    assert appts(directory, "Interprète la semaine prochaine, le mercredi à 14h, 1h.", today=MON) == [
        ("2026-11-25", "14:00", 60)]


def test_two_written_dates_side_by_side_stay_two(directory):
    assert appts(directory, "Interpreter on Dec 1, Dec 3, at 1:30pm, 1 hour each.") == [
        ("2026-12-01", "13:30", 60), ("2026-12-03", "13:30", 60)]


def test_relative_and_written_date_that_disagree_are_uncertain(directory):
    got = appts(directory, "interprète russe demain (25 novembre) à 10h, 1h", today=FRI)
    assert got == [(None, "10:00", 60)]
    got = appts(directory, "interprète le 24 novembre (mardi prochain) à 10h, 1h", today=THU)
    assert got == [("2026-11-24", "10:00", 60)]


def test_weekday_prochain_with_explicit_date_is_trusted(directory):
    assert appts(directory, "interprète russe vendredi prochain 27 nov à 10h, 1h", today=THU) == [("2026-11-27", "10:00", 60)]


def test_je_is_not_jeudi_and_lundi_14h_is_not_the_14th(directory):
    assert appts(directory, "Je voudrais un interprète lundi 14h, 1h.", today=date(2026, 11, 21)) == [("2026-11-23", "14:00", 60)]


def test_conflicting_times_give_no_time(directory):
    got = appts(directory, "Interprète arabe le 8 décembre à 9h ou à 14h, 1h.")
    assert got == [("2026-12-08", None, 60)]


def test_replaced_values_are_dropped(directory):
    assert appts(directory, "Finalement ce sera 15h au lieu de 14h.") == [(None, "15:00", None)]
    assert appts(directory, "La rencontre durera plutôt 2 heures (et non 1 h).") == [(None, None, 120)]
    assert appts(directory, "rdv le 8 décembre à 14h (non, 14h30 désolé), 1h") == [("2026-12-08", "14:30", 60)]


@pytest.mark.parametrize("text,expected", [
    ("Interprète arabe du 7 au 11 décembre à 9h, 1h.", [(None, "09:00", 60)]),
    ("Interprète arabe le 7 ou le 8 décembre à 13h, 1h.", [(None, "13:00", 60)]),
    ("Interpreter Arabic Dec 7 or Dec 8 at 1 pm, 1 hour.", [(None, "13:00", 60)]),
    ("Interprète arabe le 2 décembre à 10h ou le 9 décembre à 14h.", [(None, None, None)]),
    ("Interprète arabe demain ou après-demain à 10h.", [(None, "10:00", None)]),
    ("Interprète arabe tous les mardis de décembre à 9h, 1h.", [(None, "09:00", 60)]),
    ("Interpreter Arabic every Tuesday at 1 pm, 1 hour.", [(None, "13:00", 60)]),
    # still one date each
    ("Interprète arabe le 2 décembre à 10h et le 9 décembre à 14h.", [("2026-12-02", "10:00", None),
                                                                     ("2026-12-09", "14:00", None)]),
    ("Interprète arabe les mercredis 2, 9 et 16 décembre de 13h à 15h.",
     [("2026-12-02", "13:00", 120), ("2026-12-09", "13:00", 120), ("2026-12-16", "13:00", 120)]),
])
def test_either_day_a_span_or_every_week_is_no_single_date(directory, text, expected):
    assert appts(directory, text) == expected


@pytest.mark.parametrize("text,expected", [
    # one reading only: a part over 12 is the day, whichever side it is on
    ("Interprète espagnol le 12/15 à 13h, 1h.", ("2026-12-15", "13:00", 60)),
    ("Spanish interpreter on 12/15 at 1 pm, 1 hour.", ("2026-12-15", "13:00", 60)),
    ("Spanish interpreter on 15/12 at 1 pm, 1 hour.", ("2026-12-15", "13:00", 60)),
    ("Spanish interpreter on 12/15/2026 at 1 pm, 1 hour.", ("2026-12-15", "13:00", 60)),
    ("Spanish interpreter on 12/12 at 1 pm, 1 hour.", ("2026-12-12", "13:00", 60)),
    # in English both orders are written: day first (the network's usage), unless only the other
    # order gives a date in the coming months, or the weekday says which
    ("Spanish interpreter on 8/12 at 1 pm, 1 hour.", ("2026-12-08", "13:00", 60)),
    ("Spanish interpreter on 03/12 at 1 pm, 1 hour.", ("2026-12-03", "13:00", 60)),
    ("Spanish interpreter on 1/2 at 1 pm, 1 hour.", ("2027-02-01", "13:00", 60)),
    ("Spanish interpreter on 12/8 at 1 pm, 1 hour.", ("2026-12-08", "13:00", 60)),
    ("Spanish interpreter on 12/08/2026 at 1 pm, 1 hour.", ("2026-12-08", "13:00", 60)),
    ("Spanish interpreter on Saturday 1/2 at 1 pm, 1 hour.", ("2027-01-02", "13:00", 60)),
    # in French the day comes first (Québec usage)
    ("Interprète espagnol le 8/12 à 13h, 1h.", ("2026-12-08", "13:00", 60)),
])
def test_numeric_dates_in_either_order(directory, text, expected):
    assert appts(directory, text) == [expected]


@pytest.mark.parametrize("text,expected", [
    ("Hello, could you move BIQ-6604 from 10 am to 1 pm? Thanks.", [(None, "13:00", None)]),
    ("Hi, for BIQ-6700, could we change the date from Dec 8 to Dec 10? Same time.", [("2026-12-10", None, None)]),
    ("Bonjour, pour la BIQ-6701, on change la date : du 8 décembre au 10 décembre, même heure.",
     [("2026-12-10", None, None)]),
    ("Hi, BIQ-6702: the meeting was moved from Tuesday to Thursday, same time.", [("2026-11-26", None, None)]),
    ("Bonjour, BIQ-6703 : on passe de 1h à 1h30.", [(None, None, 90)]),
    ("Bonjour, pour la BIQ-6801 : de 10h à 11h au lieu de 9h à 10h.", [(None, "10:00", 60)]),
    ("Bonjour, pour la BIQ-6803 la rencontre sera de 13h à 14h30 (au lieu de 13h à 14h).", [(None, "13:00", 90)]),
    ("Hi, BIQ-6704: please change the length from 1 hour to 1.5 hours.", [(None, None, 90)]),
    ("Le rendez-vous de demain à 10h est déplacé à 11h.", [("2026-11-21", "11:00", None)]),
    ("Le rendez-vous du 8 décembre est reporté au 10 décembre, même heure.", [("2026-12-10", None, None)]),
    ("The appointment on Dec 8 at 10 am has been moved to Dec 10 at 2 pm.", [("2026-12-10", "14:00", None)]),
    ("Le rendez-vous de 10h passe à 11h30.", [(None, "11:30", None)]),
    ("Please change the time from 10 am to 11 am.", [(None, "11:00", None)]),
    ("L'heure change de 10h à 11h.", [(None, "11:00", None)]),
    ("On devance le rendez-vous de 14h à 13h.", [(None, "13:00", None)]),
    ("The appointment was moved from 2 pm to 3 pm.", [(None, "15:00", None)]),
    ("Le rendez-vous du 8 décembre à 10h est déplacé à 14h le 9 décembre.", [("2026-12-09", "14:00", None)]),
    ("The Dec 8 appointment is moved to 2 pm on Dec 9.", [("2026-12-09", "14:00", None)]),
    ("Le rendez-vous du 8 déc. est reporté au 10 déc. à 9h.", [("2026-12-10", "09:00", None)]),
    ("Nous devons changer l'heure du rendez-vous de 10h à 13h30.", [(None, "13:30", None)]),
    # a slot from one hour to another is still a slot
    ("Interprète le 8 décembre de 10h à 11h.", [("2026-12-08", "10:00", 60)]),
    ("Changement : le rendez-vous sera le 8 décembre de 10h à 11h.", [("2026-12-08", "10:00", 60)]),
])
def test_what_a_move_leads_to_is_the_new_value(directory, text, expected):
    assert appts(directory, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("We need an interpreter on Thursday Dec 17 from 9 to 10:30.", [("2026-12-17", "09:00", 90)]),
    ("Interprète le 17 décembre, de 9 à 10:30.", [("2026-12-17", "09:00", 90)]),
    ("Interpreter on Dec 17 between 8 and 9:15.", [("2026-12-17", "08:00", 75)]),
    ("Interpreter on Dec 17 from 1 to 2:30.", [("2026-12-17", None, None)]),  # 1 a.m. or 1 p.m.?
    # two durations: how long is not known
    ("Interprète le 4 décembre à 14h (durée approximative : 45 min à 1h).", [("2026-12-04", "14:00", None)]),
    ("Interpreter on Dec 4 at 2 pm, 30 min or 1h.", [("2026-12-04", "14:00", None)]),
])
def test_a_bare_start_before_a_written_end_and_two_durations(directory, text, expected):
    assert appts(directory, text) == expected


def test_a_past_appointment_cancelled_is_news_not_a_cancel(directory):
    text = ("Bonjour, besoin d'un interprète en arabe le 8 décembre à 10h. Attention : la rencontre "
            "précédente du 1er décembre à 9h a été annulée.")
    assert p(directory, text)["intent"] == "new_request"
    assert appts(directory, text) == [("2026-12-08", "10:00", None)]
    got = p(directory, "Arabic interpreter on Dec 8 at 10 am please. The previous appointment was cancelled.")
    assert got["intent"] == "new_request"
    # the last of a series is still to come: cancelling it is a cancel
    assert p(directory, "Pour le dernier rendez-vous de la série, le 8 décembre, merci d'annuler. BIQ-000321")["intent"] \
        == "cancel"


def test_a_weekday_said_of_a_date_is_not_another_date(directory):
    assert appts(directory, "Interprète en russe le mardi 8 décembre à 10 h. (Attention : le 8 décembre est un mardi)") \
        == [("2026-12-08", "10:00", None)]
    assert appts(directory, "Russian interpreter on Dec 8 at 10 am (Dec 8 is a Tuesday).") == [("2026-12-08", "10:00", None)]


@pytest.mark.parametrize("text", [
    "Can we push BIQ-000777 back by an hour? Same day.",
    "Could the appointment be delayed by 30 minutes? BIQ-000777",
    "Est-il possible de décaler BIQ-000777 de 30 minutes ?",
    "Peut-on retarder le rendez-vous d'une heure ? BIQ-000777",
    "On doit devancer BIQ-000777 de 15 minutes.",
])
def test_how_far_a_booking_moves_is_not_how_long_it_lasts(directory, text):
    assert all(a["duration_minutes"] is None for a in p(directory, text)["appointments"])


def test_noon_and_a_half_and_two_slots_on_one_day(directory):
    assert appts(directory, "Interprète arabe le 8 décembre à midi et demi pour trois quarts d'heure.") \
        == [("2026-12-08", "12:30", 45)]
    assert appts(directory, "Interprète arabe le 8 décembre à midi 15.") == [("2026-12-08", "12:15", None)]
    # said on a Thursday: "demain" and "vendredi" are the same day, at two times
    assert appts(directory, "Interprète arabe demain de 13h30 à 15h, puis vendredi de 9h à 10h.", today=THU) \
        == [("2026-11-20", "13:30", 90), ("2026-11-20", "09:00", 60)]


@pytest.mark.parametrize("text,expected", [
    ("Interprète coréen lundi. Le rendez-vous commence à 10h et finit à 11h30.", [("2026-11-23", "10:00", 90)]),
    ("Korean interpreter Monday. The visit begins at 10 and ends at 11:30 am.", [("2026-11-23", "10:00", 90)]),
    ("Interpreter on Dec 9. It starts at 2 pm and should be done by 3.", [("2026-12-09", "14:00", 60)]),
    ("Interprète le 9 décembre à 13h, la rencontre se termine vers 14h15.", [("2026-12-09", "13:00", 75)]),
])
def test_a_start_then_an_end_is_a_slot(directory, text, expected):
    assert appts(directory, text) == expected


@pytest.mark.parametrize("text", [
    "Hello, could you add 30 minutes to BIQ-000706? The meeting will run longer.",
    "Bonjour, pourriez-vous prolonger BIQ-000706 de 30 minutes ?",
    "Bonjour, il faudrait 30 minutes de plus pour BIQ-000706.",
    "Hi, we need an extra 30 minutes for BIQ-000706.",
])
def test_time_added_to_a_booking_is_not_its_length(directory, text):
    assert all(a["duration_minutes"] is None for a in p(directory, text)["appointments"])


@pytest.mark.parametrize("text", [
    "Est-ce possible de prolonger à 2h?",
    "Pourriez-vous prolonger la rencontre à 2 heures?",
    "Could you extend it to 2 hours?",
])
def test_a_booking_extended_to_a_length(directory, text):
    got = p(directory, text, reply=True, subject="RE: [BIQ-005700] Demande confirmée")
    assert (got["intent"], got["appointments"]) == ("modify", [{"date": None, "start_time": None, "duration_minutes": 120}])


@pytest.mark.parametrize("text", [
    "Pouvez-vous prolonger jusqu'à 14h?",
    "Could you extend it until 3 pm?",
    "La rencontre va déborder jusqu'à 11h30.",
    "La rencontre finira à 11h30 finalement.",
])
def test_a_lone_end_time_is_no_start(directory, text):
    got = p(directory, text, reply=True, subject="RE: [BIQ-005700] Demande confirmée")
    assert all(a["start_time"] is None for a in got["appointments"])


def test_a_bare_start_after_a_date_and_a_weekday_that_does_not_fit(directory):
    assert appts(directory, "Hi, Arabic interpreter Dec 8, 10 to 11:30 am.") == [("2026-12-08", "10:00", 90)]
    assert appts(directory, "Hi, Arabic interpreter Dec 8, 9-10:30 am.") == [("2026-12-08", "09:00", 90)]
    assert appts(directory, "Interpreter on Dec 1, 8 and 15 at 9:00.") == [
        ("2026-12-01", "09:00", None), ("2026-12-08", "09:00", None), ("2026-12-15", "09:00", None)]
    # said on Friday 20 November: the coming 8th is a Tuesday
    assert appts(directory, "Hi, Arabic interpreter on Wednesday the 8th at 10 am.") == [(None, "10:00", None)]
    assert appts(directory, "Hi, Arabic interpreter on Tuesday the 8th at 10 am.") == [("2026-12-08", "10:00", None)]


@pytest.mark.parametrize("text,expected", [  # said on Friday 20 November
    ("Interprète arabe jeudi en huit à 10h.", "2026-12-03"),
    ("Interprète arabe lundi en quinze à 10h.", "2026-12-07"),
    ("Arabic interpreter a week from Thursday at 10 am.", "2026-12-03"),
    ("Arabic interpreter two weeks from Monday at 10 am.", "2026-12-07"),
    ("Interprète arabe jeudi à 10h.", "2026-11-26"),
])
def test_a_weekday_a_week_or_two_ahead(directory, text, expected):
    assert appts(directory, text) == [(expected, "10:00", None)]


@pytest.mark.parametrize("text,expected", [
    ("Interprète arabe le 8 décembre à quatorze heures.", "14:00"),
    ("Interprète arabe le 8 décembre à dix heures trente.", "10:30"),
    ("Interprète arabe le 8 décembre vers neuf heures et demie.", "09:30"),
    ("Interprète arabe le 8 décembre à quinze heures et quart.", "15:15"),
    ("Interprète arabe le 8 décembre à deux heures.", None),  # 2 a.m. or 2 p.m.: not said
    ("Interprète arabe le 8 décembre pour quatorze heures de formation.", None),
])
def test_an_hour_in_words(directory, text, expected):
    assert [a[1] for a in appts(directory, text)] == [expected]


@pytest.mark.parametrize("text,expected", [  # said on Friday 20 November
    ("Interprète arabe dans 3 jours à 10h.", "2026-11-23"),
    ("Interprète arabe dans deux jours à 10h.", "2026-11-22"),
    ("Arabic interpreter in 4 days at 10 am.", "2026-11-24"),
    ("Arabic interpreter in two days' time at 10 am.", "2026-11-22"),
    ("Interprète arabe pour le 8 à 10h.", "2026-12-08"),
    ("Interprète arabe le 27, à 10h.", "2026-11-27"),
    ("Arabic interpreter on the 8th at 10 am.", "2026-12-08"),
    ("Arabic interpreter for the 24th, 10 am.", "2026-11-24"),
    # what is not a day of its own
    ("Interprète arabe dans 3 jours ouvrables à 10h.", None),
    ("Interprète arabe d'ici 3 jours, à 10h.", None),
    ("Interprète arabe au 8e étage à 10h.", None),
    ("Arabic interpreter on the 8th floor at 10 am.", None),
    ("Interprète arabe le 8 ou le 9 à 10h.", None),
])
def test_a_day_counted_ahead_or_named_without_its_month(directory, text, expected):
    assert appts(directory, text) == [(expected, "10:00", None)]


@pytest.mark.parametrize("text", [
    "Interprète arabe entre le 7 et le 9 décembre, à 10h.",
    "Arabic interpreter between Dec 7 and Dec 9 at 10 am.",
    "Arabic interpreter between December 7 and 9, at 10 am.",
])
def test_a_span_of_days_is_no_date(directory, text):
    assert all(a[0] is None for a in appts(directory, text))
    assert any(a[1] == "10:00" for a in appts(directory, text))


@pytest.mark.parametrize("text,expected", [
    ("Arabic interpreter Dec 8 at 10 am, approx. 1-1.5 hours.", ("2026-12-08", "10:00", None)),
    ("Arabic interpreter Dec 8 at 10 am, 1.5 hours.", ("2026-12-08", "10:00", 90)),
    ("Arabic interpreter Dec 8 at 10 am, in person, 1.5h.", ("2026-12-08", "10:00", 90)),
    ("Interprète arabe le 8 décembre à 10h, 1,5h.", ("2026-12-08", "10:00", 90)),
    ("Interprète arabe le 8 décembre à 10h, 1,5 heure.", ("2026-12-08", "10:00", 90)),
    ("Interprète arabe le 8 décembre vers 9h-9h30.", ("2026-12-08", None, None)),
    ("Arabic interpreter Dec 8 around 9-9:30 am.", ("2026-12-08", None, None)),
    ("Interprète arabe le 8 décembre de 9h à 9h30.", ("2026-12-08", "09:00", 30)),
])
def test_a_span_of_lengths_or_of_start_times_is_no_value(directory, text, expected):
    assert appts(directory, text) == [expected]


@pytest.mark.parametrize("text,expected", [
    ("Interprète arabe le 8 décembre de 23h à 1h (garde de nuit).", ("2026-12-08", "23:00", 120)),
    ("Interprète arabe le 8 décembre entre 13h et 16h, la rencontre dure 1h.", ("2026-12-08", None, 60)),
    ("Interprète arabe le 8 décembre à 10h (heure exacte à confirmer), 1h.", ("2026-12-08", None, 60)),
    ("Arabic interpreter Dec 8 at 10 am (time TBC), 1 hour.", ("2026-12-08", None, 60)),
    ("Arabic interpreter Dec 8 at 9:00 for a 3-hour session (with a 15 minute break).", ("2026-12-08", "09:00", 180)),
    ("Interprète arabe le 8 décembre à 10h, durée 1h (+15 min pour le transport).", ("2026-12-08", "10:00", 60)),
    ("Interpreter needed on Dec 8 between 2 and 3 pm.", ("2026-12-08", "14:00", 60)),
])
def test_night_slots_windows_pauses_and_times_to_confirm(directory, text, expected):
    assert appts(directory, text) == [expected]


def test_a_date_told_as_background_is_no_appointment(directory):
    text = ("Interprète arabe le 8 déc à 10h, 1h. Note : le rdv du 1er décembre à 14h avait été annulé par la "
            "clinique, d'où cette nouvelle demande.")
    assert appts(directory, text) == [("2026-12-08", "10:00", 60)]
    assert appts(directory, "Interpreter Arabic Dec 8 at 10am. The previous appointment on Dec 1 was cancelled.") \
        == [("2026-12-08", "10:00", None)]


def test_a_corrected_day_takes_the_month_said_after_it(directory):
    assert appts(directory, "Oups, je me suis trompée de date : c'est le 10 et non le 9 décembre.", reply=True) == [
        ("2026-12-10", None, None)]
    assert appts(directory, "Sorry, at 10 am on the 10th, not the 9th of December.", reply=True) == [
        ("2026-12-10", "10:00", None)]


def test_a_replaced_date_is_no_appointment(directory):
    assert appts(directory, "Sorry, the date should be December 9, not December 8.", reply=True) == [
        ("2026-12-09", None, None)]
    assert appts(directory, "Le 9 décembre à 15h au lieu du 8 décembre à 14h.", reply=True) == [
        ("2026-12-09", "15:00", None)]
    assert appts(directory, "Le 9 décembre au lieu du 8 déc. Durée 1h.", reply=True) == [("2026-12-09", None, 60)]


def test_no_appointment_starts_before_six_without_am_or_pm(directory):
    assert appts(directory, "Interprète le 9 décembre à 1h30.") == [("2026-12-09", None, None)]
    assert appts(directory, "Interpreter on Dec 9 at 1:30.") == [("2026-12-09", None, None)]
    assert appts(directory, "Le 9 décembre. Même heure, 1h.", reply=True) == [("2026-12-09", None, 60)]
    assert appts(directory, "Interpreter on Dec 9 at 1:30 pm.") == [("2026-12-09", "13:30", None)]


def test_time_early_is_not_a_duration(directory):
    assert appts(directory, "Le 9 décembre de 13h à 14h30. Please come 10 minutes early.") == [("2026-12-09", "13:00", 90)]


def test_room_numbers_and_phone_numbers_are_not_dates(directory):
    got = p(directory, "Interprète arabe le 8 décembre à 10h, 1h, bureau 2.14, téléphone 514-555-0199.")
    assert [a["date"] for a in got["appointments"]] == ["2026-12-08"]


@pytest.mark.parametrize("text,code", [
    ("interprète en espagnole svp", "es"),
    ("interprète tigrinia", "ti"),
    ("interprète en arabe syrien", "ar"),
    ("interprète en Kurde sorani", "ckb"),
    ("interprète kurde", "ku"),
    ("an interpreter for a Vietnamese-speaking lady", "vi"),
    ("interprète en créole haïtien", "ht"),
    ("interprète LSQ", "fcs"),
    ("interprète en somalienne", "so"),
])
def test_languages(directory, text, code):
    assert p(directory, text + " le 8 décembre à 10h")["target_language"] == code


@pytest.mark.parametrize("text,code", [
    ("Interprète en pachto (pas en dari) le 8 décembre à 9h.", "ps"),
    ("Interprète en pachto et non en dari le 8 décembre à 9h.", "ps"),
    ("Interprète en dari, ou plutôt en pachto, le 8 décembre à 9h.", "ps"),
    ("Pour BIQ-000123 : la langue n'est pas le dari mais le pachto.", "ps"),
    ("Regarding BIQ-000123: the patient speaks Pashto, not Dari.", "ps"),
    ("Interprète en dari (pas en pachto, ni en farsi) le 8 décembre à 9h.", "prs"),
    # a language only denied is asked for by nobody
    ("Pour BIQ-000123 : ce n'est finalement pas en dari.", None),
])
def test_a_language_denied_or_taken_back_is_not_the_one_asked_for(directory, text, code):
    assert p(directory, text)["target_language"] == code


def test_a_correction_of_the_language_with_a_reference_is_a_modify(directory):
    got = p(directory, "Bonjour, pour le rendez-vous BIQ-000123, le patient ne parle finalement pas le dari mais "
                       "le pachto. Merci de modifier.")
    assert (got["intent"], got["ref"], got["target_language"], got["reason"]) == ("modify", "BIQ-000123", "ps", None)
    assert p(directory, "Pour la demande BIQ-000123 : la langue n'est pas le dari mais le pachto.")["intent"] == "modify"


def test_a_sentence_about_the_appointment_is_no_reason_and_a_length_is_no_part_of_one(directory):
    text = ("I'd like to book an Arabic interpreter for my patient on Tuesday, December 8th, 2026 at 10:00 AM. "
            "The appointment should take approximately 45 minutes.")
    assert p(directory, text)["reason"] is None
    text = "Ukrainian interpreter on Dec. 10 at 1:30 p.m. for a 2-hour psychiatric evaluation at the Jewish General."
    assert p(directory, text)["reason"] == "psychiatric evaluation"
    assert p(directory, "Interpreter Dec 10 at 1 pm. Diabetes follow-up.")["reason"] == "Diabetes follow-up"


@pytest.mark.parametrize("text", [
    "Interprète arabe le 8 décembre à 10h. Ne pas envoyer Karim Aziz svp (conflit avec la famille).",
    "Interprète arabe le 8 décembre à 10h. La famille ne veut pas de Karim Aziz.",
    "Interprète arabe le 8 décembre à 10h. Karim Aziz ne doit pas être assigné.",
    "Arabic interpreter on Dec 8 at 10 am. Please don't send Karim Aziz.",
    "Arabic interpreter on Dec 8 at 10 am. Karim Aziz should not be assigned to this family.",
])
def test_an_interpreter_not_wanted_is_not_the_preferred_one(directory, text):
    assert p(directory, text)["preferred_interpreter"] is None


def test_where_the_user_lives_is_not_where_the_appointment_is(directory):
    text = ("Interprète arabe le 8 décembre à 10h. L'usager habite près de l'Hôpital Jean-Talon mais le rendez-vous "
            "est au CLSC de Saint-Michel.")
    assert p(directory, text)["location"] == "clsc-saint-michel"
    text = "Arabic interpreter on Dec 8 at 10 am at CLSC Ahuntsic. The patient lives near Fleury."
    assert p(directory, text)["location"] == "clsc-ahuntsic"


def test_a_terse_reminder_call_with_the_users_number(directory):
    got = p(directory, "need farsi interp dec 9 2-3pm JGH pt needs reminder call 514 555 0100")
    assert (got["notify_user"], got["user_phone"]) == (True, "514-555-0100")
    assert p(directory, "farsi interp dec 9 2-3pm JGH, no reminder needed")["notify_user"] is False


@pytest.mark.parametrize("value", ["aucun", "Aucune", "none", "N/A", "-", "Pas de préférence", "Indifférent"])
def test_a_form_that_names_no_preferred_interpreter(directory, value):
    text = f"Emplacement : CLSC Métro\nLangue d'arrivée : Arabe\nDate : 2026-12-08\nInterprète à prioriser : {value}\n"
    assert p(directory, text)["preferred_interpreter"] is None


@pytest.mark.parametrize("value", ["aucun", "Aucune.", "N/A", "-", "rien", "S.O."])
def test_a_free_text_form_field_that_says_nothing(directory, value):
    text = (f"Emplacement : CLSC Métro\nLangue d'arrivée : Arabe\nDate : 2026-12-08\nRaison de la demande : {value}\n"
            f"Message à l'interprète : {value}\nNotes au coordinateur : {value}\n")
    got = p(directory, text)
    assert (got["reason"], got["message_to_interpreter"], got["notes_to_coordinator"]) == (None, None, None)


def test_an_english_forms_message_to_interpreter(directory):
    text = ("Location: Lakeshore General Hospital\nTarget language: Punjabi\nDate: December 10, 2026\n"
            "Message to interpreter: Please arrive 10 min early.\nNotes to the bank: urgent\n")
    got = p(directory, text)
    assert (got["message_to_interpreter"], got["notes_to_coordinator"]) == ("Please arrive 10 min early.", "urgent")


def test_contacting_the_user_to_confirm_is_notifying(directory):
    text = ("Interprète arabe le 8 décembre à 10h. Veuillez contacter l'usagère via son fils Ali au 438-555-0181 "
            "pour confirmer.")
    got = p(directory, text)
    assert (got["notify_user"], got["user_phone"]) == (True, "438-555-0181")
    got = p(directory, "Interprète arabe le 8 décembre à 10h. Vous pouvez m'appeler pour confirmer au 514-555-0111.")
    assert (got["notify_user"], got["user_phone"]) == (None, None)


def test_where_a_meeting_is_is_no_reason(directory):
    text = ("Besoin d'un interprète en lingala le 9 décembre à 9h pour 1h30. L'usager sera accompagné de sa fille. "
            "Rencontre au 3e étage, local 3.125.")
    assert p(directory, text)["reason"] is None
    assert p(directory, "Interpreter Lingala Dec 9 at 9 am. Meeting on the 2nd floor, room 210.")["reason"] is None
    assert p(directory, "Interprète lingala le 9 décembre à 9h. Rencontre avec la nutritionniste.")["reason"] \
        == "Rencontre avec la nutritionniste"


@pytest.mark.parametrize("text", [
    "Hello, could we have a Hebrew or Yiddish interpreter on Dec 15 at 9 am?",
    "Swahili or Kinyarwanda interpreter please, Dec 7th at 8:15.",
    "Interprète swahili ou kinyarwanda le 7 décembre à 8h15.",
    "Interprète dari/pachto le 7 décembre à 8h15.",
    "Interprète pour une famille érythréenne (tigrinya ou tigré, à confirmer), le 9 décembre à 10h.",
])
def test_either_of_two_languages_is_no_target(directory, text):
    assert p(directory, text)["target_language"] is None


@pytest.mark.parametrize("text,target", [
    ("Bonjour! Ça serait pour un interprète en langue turque, le 3 décembre de 8h à 9h.", "tr"),
    ("Interprète, langue vietnamienne, le 3 décembre à 8h.", "vi"),
    ("Besoin d'une interprète de langue polonaise le 3 décembre à 8h.", "pl"),
])
def test_a_language_named_in_the_feminine(directory, text, target):
    assert p(directory, text)["target_language"] == target


def test_source_language_only_when_stated(directory):
    assert p(directory, "interprète français-espagnol le 8 décembre")["source_language"] == "fr"
    assert p(directory, "interpreter English–Tigrinya on Dec 8")["source_language"] == "en"
    # the pair written the other way round: the clinician's side is still French or English
    got = p(directory, "need someone for Ukrainian > English, Dec 9 at 2 pm")
    assert (got["source_language"], got["target_language"]) == ("en", "uk")
    got = p(directory, "Interprète ukrainien-français le 9 décembre à 14h.")
    assert (got["source_language"], got["target_language"]) == ("fr", "uk")
    got = p(directory, "interprète wolof le 8 décembre. Le papa parle un peu français.")
    assert got["source_language"] is None and got["target_language"] == "wo"


def test_karen_is_a_name_unless_it_is_a_language(directory):
    got = p(directory, "Bonjour, Karen m'a dit d'écrire. Interprète en arabe le 8 décembre à 10h.")
    assert got["target_language"] == "ar"


@pytest.mark.parametrize("text,inst", [
    ("au CLSC de Côte-des-Neiges", "clsc-cote-des-neiges"),
    ("à l'Hôpital Sacré-Cœur", "hopital-sacre-coeur"),
    ("at the Jewish General", "hopital-general-juif"),
    ("au CLSC St-Michel", "clsc-saint-michel"),
    ("à HMR", "hopital-maisonneuve-rosemont"),
    ("at the Glen", "cusm-glen"),
    ("à Ste-Justine", "chu-sainte-justine"),
    ("13 h à 14 h 30, Institut Douglas", "institut-douglas"),
    ("au CLSC Métro", "clsc-metro"),
    ("au clsc samuel de champlain", "clsc-samuel-de-champlain"),
])
def test_installations(directory, text, inst):
    assert p(directory, f"Interprète arabe le 8 décembre à 10h {text}.")["location"] == inst


def test_street_names_and_negated_places_are_not_the_location(directory):
    got = p(directory, "Interprète arabe le 8 décembre à 10h au 1385 rue Jean-Talon Est, app. 4.")
    assert got["location"] is None
    got = p(directory, "Le rendez-vous aura lieu à l'Hôpital de Verdun et non au CLSC de Verdun.",
            reply=True)
    assert got["location"] == "hopital-verdun"


def test_interpreters(directory):
    assert p(directory, "Interprète polonais le 8 décembre, si possible Mme Nowak.")["preferred_interpreter"] == "int-024"
    assert p(directory, "Interprète espagnol le 8 décembre, nous aimerions avoir Carlos Ramirez.")["preferred_interpreter"] == "int-016"
    assert p(directory, "Interprète turc le 8 décembre. La patiente aimerait avoir Ayşe Demir.")["preferred_interpreter"] == "Ayşe Demir"
    assert p(directory, "Interprète arabe le 8 décembre.\nNadia Haddad", sender_name="Haddad, Nadia")["preferred_interpreter"] is None


def test_signature_found_by_the_senders_name_not_by_their_organisation():
    body = ("Bonjour,\nInterprète arabe le 8 décembre à 10 h.\nCIUSSS NIM salle 4\nDurée 1 h.\n"
            "Sophie Tremblay\nTravailleuse sociale")
    assert strip_signature(body, "Sophie Tremblay (CIUSSS NIM)").endswith("Durée 1 h.")
    assert personal_names("Sophie Tremblay - CCOMTL") == ["sophie", "tremblay"]
    assert personal_names("TREMBLAY Sophie CCOMTL") == ["sophie"]
    assert personal_names("HÉLÈNE CÔTÉ") == ["helene", "cote"]
    assert personal_names("Haddad, Nadia") == ["haddad", "nadia"]


def test_phone_of_the_user_not_of_the_sender(directory):
    got = p(directory, "Interprète le 8 décembre. Vous pouvez me joindre au 514-555-0166, poste 2231.")
    assert got["user_phone"] is None
    got = p(directory, "Interprète arabe le 8 décembre. Merci d'aviser la patiente du rendez-vous au (450) 555-0127.")
    assert (got["notify_user"], got["user_phone"]) == (True, "450-555-0127")
    got = p(directory, "Pas besoin d'aviser le patient. Interprète le 8 décembre.")
    assert got["notify_user"] is False


def test_mode_as_a_bare_word(directory):
    assert p(directory, "Interprète arabe\nDate : 8 décembre\nHeure : 10h\nMode : Téléphone\n")["mode"] == "phone"
    assert p(directory, "Tamil interpreter, Thursday December 10, 8:00-9:00, phone.")["mode"] == "phone"
    assert p(directory, "Tamil interpreter, December 10 at 8am, phone, 30 mins")["mode"] == "phone"
    assert p(directory, "Tamil interpreter on December 10 at 8:00. Phone: 514 555 0100")["mode"] is None


def test_phoning_the_user_is_not_the_mode(directory):
    got = p(directory, "Interprète pachto le 11 décembre à 10h au CLSC de Parc-Extension. "
                       "Merci de prévenir la patiente par téléphone au 514-555-0188.")
    assert (got["mode"], got["notify_user"]) == ("in_person", True)
    assert p(directory, "Hi, Creole interpreter on Dec 14 at 1:30 pm at CLSC Metro.")["mode"] == "in_person"
    assert p(directory, "Interprète arabe le 1er déc. à 9 h au CHUM, 1 h 30.")["mode"] == "in_person"


def test_a_reply_that_only_states_the_mode_modifies(directory):
    got = p(directory, "Bonjour,\nJe confirme que ce sera en présentiel.\nMerci", reply=True)
    assert (got["intent"], got["mode"]) == ("modify", "in_person")
    got = p(directory, "Merci, je vous appelle par téléphone demain.", reply=True)
    assert got["mode"] is None
    for thanks in ("Merci, l'interprète Ahmad Rahimi était super.",
                   "Merci, l'interprétation au téléphone s'est très bien passée."):
        assert p(directory, thanks, reply=True)["intent"] == "other"


@pytest.mark.parametrize("text,expected", [
    ("Oui, c'est bien en personne. L'usagère n'a pas de téléphone, pas besoin de l'aviser.",
     ("modify", "in_person", False, None)),
    ("The patient's phone is 514-555-0123, yes please call her.", ("modify", None, True, "514-555-0123")),
    ("Non, pas en vidéo : par téléphone.", ("modify", "phone", None, None)),
    ("It's by video, on Teams.", ("modify", "video", None, None)),
    ("en personne", ("modify", "in_person", None, None)),
    ("Par téléphone.", ("modify", "phone", None, None)),
    # thanks and news are still no change
    ("Merci, l'usagère a bien reçu l'appel de l'interprète.", ("other", None, None, None)),
    ("Merci beaucoup, c'est parfait!", ("other", None, None, None)),
])
def test_a_reply_that_answers_the_bots_question(directory, text, expected):
    got = p(directory, text, reply=True)
    assert (got["intent"], got["mode"], got["notify_user"], got["user_phone"]) == expected


def test_the_subject_says_when_and_the_body_how_long(directory):
    got = p(directory, "Bonjour, voir l'objet. Durée 1h, au CLSC Métro. Merci",
            subject="Demande d'interprète - espagnol - 8 décembre 13h")
    assert got["appointments"] == [{"date": "2026-12-08", "start_time": "13:00", "duration_minutes": 60}]
    # a body that says when is not overruled by its subject
    got = p(directory, "Interprète espagnol le 9 décembre à 10h, 1h.", subject="Demande - 8 décembre 13h")
    assert got["appointments"] == [{"date": "2026-12-09", "start_time": "10:00", "duration_minutes": 60}]


def test_a_reply_naming_an_interpreter_of_the_roster(directory):
    got = p(directory, "Karim Aziz si possible", reply=True)
    assert (got["intent"], got["preferred_interpreter"]) == ("modify", "int-018")
    assert p(directory, "Merci, Karim Aziz était super.", reply=True)["intent"] == "other"


def test_interpreter_type_in_english_and_in_passing(directory):
    text = "Creole interpreter on Dec 14 at 1:30 pm. Interpreter type: BI du RSSS. Preferred interpreter: Li Wei."
    assert p(directory, text)["interpreter_type"] == "bi_rsss"
    assert p(directory, "Interprète arabe le 8 décembre à 10h, d'un fournisseur externe svp.")["interpreter_type"] \
        == "external"


def test_a_terse_message_takes_the_senders_language_setting(directory):
    assert p(directory, "cancel 5142 pls, pt no show")["language"] == "en"
    assert p(directory, "BIQ-5142 ok?")["language"] == "fr"
    assert p(directory, "BIQ-5142 ok?", language_hint="en-US")["language"] == "en"
    assert p(directory, "Bonjour, svp annuler la demande 5142.", language_hint="en")["language"] == "fr"


def test_the_user_named_by_a_pronoun_or_before_an_abbreviation(directory):
    got = p(directory, "Bonjour, la patiente (tél. 438-555-0177) aura besoin d'un interprète en dari le 9 décembre "
                       "à 10h, 1h, au CLSC Métro. Merci de l'aviser.")
    assert (got["notify_user"], got["user_phone"]) == (True, "438-555-0177")
    got = p(directory, "Interprète en dari le 9 décembre à 10h. Pour toute question, vous pouvez me joindre au "
                       "514-555-0100.")
    assert (got["notify_user"], got["user_phone"]) == (None, None)


def test_a_notify_question_answered_on_its_line(directory):
    assert p(directory, "Interprète arabe le 8 déc à 10h.\nRappel au patient par l'interprète ? Non\n")["notify_user"] is False
    assert p(directory, "Interpreter Arabic Dec 8 at 10am.\nRemind the patient? Yes\n")["notify_user"] is True


def test_calling_the_user_ahead_is_notifying_them(directory):
    got = p(directory, "Tamil interpreter on Dec 10 at 8:00. The patient's number is 514 555 0177, "
                       "please call him the day before.")
    assert (got["notify_user"], got["user_phone"]) == (True, "514-555-0177")


@pytest.mark.parametrize("text,mode", [
    ("en visioconférence (Teams)", "video"),
    ("par Zoom", "video"),
    ("par téléphone", "phone"),
    ("by phone instead of in person", "phone"),
    ("(téléphone)", "phone"),
    ("en appel conférence à trois (l'interprète au téléphone)", "phone"),
    ("au domicile de l'usager", "in_person"),
    ("- a telehealth visit (phone)", "phone"),
    ("sur place", "in_person"),
    ("en présentiel ou par téléphone, je ne sais pas encore", None),
    ("l'interprète peut être à distance ou sur place", None),
    ("sur place, pas à distance", "in_person"),
])
def test_mode(directory, text, mode):
    assert p(directory, f"Interprète arabe le 8 décembre à 10h {text}.")["mode"] == mode


@pytest.mark.parametrize("text,mode", [
    ("We require a Gujarati interpreter on Dec 18 at 3:15 pm at the Jewish General Hospital.", "in_person"),
    ("Interprète dari le 14 décembre à 9h à Sainte-Justine.", "in_person"),
    ("Interprète dari le 14 décembre à 9h, l'usager est suivi à Sainte-Justine, rencontre par Teams.", "video"),
    ("Gujarati interpreter on Dec 18 at 3:15 pm; the patient was referred by the Jewish General Hospital.", None),
])
def test_being_at_a_named_place_is_in_person(directory, text, mode):
    assert p(directory, text)["mode"] == mode


@pytest.mark.parametrize("text,intent,ref", [
    ("SVP annuler la demande BIQ-004812.", "cancel", "BIQ-004812"),
    ("Please cancel request #5007.", "cancel", "BIQ-005007"),
    ("Est-ce que vous avez trouvé quelqu'un pour la demande biq 4870?", "status", "BIQ-004870"),
    ("mes demandes", "status", None),
    ("Merci beaucoup!", "other", None),
    ("désactiver les notifications", "other", None),
    ("Pour la BIQ-5034 ce sera finalement par téléphone.", "modify", "BIQ-005034"),
    ("Je dois annuler la demande no 4821.", "cancel", "BIQ-004821"),
    ("Any update on ref. 4966?", "status", "BIQ-004966"),
    ("Pourriez-vous confirmer si un interprète a été trouvé pour la demande BIQ-5100 ?", "status", "BIQ-005100"),
    ("Has an interpreter been assigned to request 5101 yet?", "status", "BIQ-005101"),
    ("Je n'ai plus besoin de l'interprète pour demain 14h au CLSC (espagnol).", "cancel", None),
    ("The interpreter is no longer needed for BIQ-5102.", "cancel", "BIQ-005102"),
    ("on a pu trouver quelqu'un pour la BIQ-5141?", "status", "BIQ-005141"),
    ("Bonjour, la demande BIQ-5300 est-elle confirmée?", "status", "BIQ-005300"),
    ("Hi, is BIQ-5300 still on for tomorrow?", "status", "BIQ-005300"),
    ("Has anyone accepted BIQ-5300?", "status", "BIQ-005300"),
    ("Bonjour, qui sera l'interprète pour la BIQ-5300?", "status", "BIQ-005300"),
    ("Je n'ai toujours pas de nouvelles de ma demande BIQ-5300.", "status", "BIQ-005300"),
    ("What requests do I have next week?", "status", None),
    ("Est-ce que je peux annuler une demande par courriel?", "other", None),
    ("Can you cancel the interpreter for tomorrow 10am at CLSC Metro?", "cancel", None),
    ("Interprète arabe le 8 déc à 10h, 1h, au CLSC Métro. Si le rendez-vous est annulé, je vous aviserai.",
     "new_request", None),
    ("Arabic interpreter on Dec 8 at 10 am, 1 hour. I'll let you know if it gets cancelled.", "new_request", None),
    ("Hi, I am on vacation until Dec 7. For urgent matters contact Marie at 514-555-0100.", "other", None),
    ("Je suis la nouvelle infirmière au CLSC Métro. Comment puis-je faire une demande d'interprète?", "other", None),
    ("Merci, c'est noté pour BIQ-5290 le 3 décembre à 10h.", "other", "BIQ-005290"),
    ("Je serai absente le 8, donc le rendez-vous sera le 9 décembre à 10h, interprète en arabe.", "new_request", None),
    ("Bonjour, le rendez-vous est reporté au 10 décembre, même heure, même durée.", "modify", None),
    ("Hi, the appointment has been moved to Dec 10 at 2 pm.", "modify", None),
    ("Le rendez-vous du 8 a été annulé. Nouvelle demande : interprète arabe le 15 décembre à 13h30.",
     "new_request", None),
    ("The Dec 8 appointment was cancelled. New request: Arabic interpreter on Dec 15 at 1:30 pm.",
     "new_request", None),
    ("Le rendez-vous du 8 décembre est annulé.", "cancel", None),
    ("Bonjour à tous, une formation sur le travail avec les interprètes aura lieu le 8 décembre à 13h en "
     "visioconférence. Inscrivez-vous via le lien.", "other", None),
    ("Hi all — quick one: Arabic interpreter Dec 9 10am CLSC Metro 1h please!", "new_request", None),
    ("Bonjour, combien coûte une heure d'interprétation pour un établissement?", "other", None),
    ("Bonjour, je suis interprète en arabe et j'aimerais offrir mes services à la banque. Voici mon CV.",
     "other", None),
    ("Hi, I'm an interpreter (Tigrinya) and I'm available on Dec 8 and 9 if you need someone.", "other", None),
    ("Bonjour à tous! J'ai besoin d'un interprète en arabe demain 10h au CLSC Métro.", "new_request", None),
    ("Bonjour, pour la BIQ-6403 l'adresse est le 1234 rue Jarry, app. 5.", "modify", "BIQ-006403"),
    ("Hi, can we push BIQ-6404 to next week, same day and time?", "modify", "BIQ-006404"),
    ("Bonjour, est-il possible de décaler la BIQ-6405 d'une semaine?", "modify", "BIQ-006405"),
    ("Hi, who's the interpreter for tomorrow's 10am Arabic appointment at the JGH?", "status", None),
    ("Bonjour, est-ce que l'interprète pour demain 10h (arabe, HGJ) est confirmé?", "status", None),
    ("I need an Arabic interpreter tomorrow at 10 am at the JGH. Who will be the interpreter?", "new_request", None),
    ("Bonjour, nous n'aurons finalement pas besoin de l'interprète pour la BIQ-5900. Merci", "cancel", "BIQ-005900"),
    ("Hi, we won't need the interpreter for BIQ-5901 after all.", "cancel", "BIQ-005901"),
    ("Hi, please call off the interpreter for tomorrow's appointment (BIQ-5902).", "cancel", "BIQ-005902"),
    ("Bonjour, la rencontre BIQ-5903 n'aura pas lieu.", "cancel", "BIQ-005903"),
    ("Bonjour, on peut laisser tomber la demande BIQ-5905.", "cancel", "BIQ-005905"),
    ("Hello, the appointment for BIQ-5906 is off.", "cancel", "BIQ-005906"),
    ("Bonjour, je retire ma demande BIQ-5907.", "cancel", "BIQ-005907"),
    ("Hi, I'd like to withdraw request BIQ-5908.", "cancel", "BIQ-005908"),
    ("Bonjour, le rendez-vous BIQ-5909 est remis à une date ultérieure, je vous recontacte.", "cancel", "BIQ-005909"),
    ("Pour la BIQ-5910, pas besoin d'aviser l'usager.", "modify", "BIQ-005910"),
    ("La rencontre BIQ-5911 n'aura pas lieu au CLSC mais à l'HGJ.", "modify", "BIQ-005911"),
    ("For BIQ-5912: the doctor is off on Friday, so the meeting moves to Dec 10 at 10 am.", "modify", "BIQ-005912"),
    ("Hello! Do you have someone for Tagalog tomorrow morning, 9:30, at the Lakeshore (in person)?", "new_request", None),
    ("Avez-vous quelqu'un en tigrinya pour demain à 14h au CLSC Métro?", "new_request", None),
    ("Do you have someone for BIQ-5300 yet?", "status", "BIQ-005300"),
    ("Bonjour, est-ce qu'il reste des interprètes disponibles en tigrinya pour demain 14h? Sinon je vais reporter "
     "le rendez-vous.", "new_request", None),
    ("Bonjour, le patient ne viendra pas demain, vous pouvez libérer l'interprète (BIQ-5800).", "cancel", "BIQ-005800"),
    ("Hi, the patient won't be coming tomorrow, you can release the interpreter (BIQ-5800).", "cancel", "BIQ-005800"),
    ("Hi, the patient no-showed today for BIQ-5801. FYI.", "other", "BIQ-005801"),
    ("Arabic interpreter Dec 8 at 10 am, 1 hour, CLSC Metro. If the patient is a no-show, please call me.",
     "new_request", None),
    ("Arabic interpreter Dec 8 at 10 am, 1 hour. The meeting is off-site, at the patient's home.", "new_request", None),
    ("Interprète arabe le 8 déc à 10h au CLSC Métro. Le père ne viendra pas, seulement la mère.", "new_request", None),
    ("Arabic interpreter Dec 8 at 10 am at CLSC Metro. The patient won't come alone, her son will be there.",
     "new_request", None),
    ("Pour la BIQ-5801, l'interprète ne pourra pas entrer avant 9h15: la porte ouvre à 9h15.", "modify", "BIQ-005801"),
    ("Bonjour, la patiente ne s'est pas présentée ce matin (BIQ-5801).", "other", "BIQ-005801"),
    ("La patiente ne s'est pas présentée; pouvez-vous reporter la BIQ-5801 au 10 décembre à 10h?", "modify", "BIQ-005801"),
    ("Hello, please disregard my previous request (BIQ-5803), it was sent by mistake.", "cancel", "BIQ-005803"),
    ("Bonjour, svp ignorer ma demande précédente BIQ-5804, c'était une erreur.", "cancel", "BIQ-005804"),
    ("Bonjour, je confirme que la rencontre de demain (BIQ-005500) est maintenue. Merci", "other", "BIQ-005500"),
    ("Hi, just confirming that tomorrow's appointment (BIQ-5500) is still going ahead.", "other", "BIQ-005500"),
    ("Hi, I submitted a request yesterday for an Arabic interpreter (Dec 8, 10am) but haven't received a "
     "confirmation. Can you check?", "status", None),
    ("Bonjour, j'ai envoyé une demande lundi pour un interprète arabe le 8 décembre à 10h et je n'ai pas reçu "
     "de confirmation.", "status", None),
    ("Le rendez-vous du 8 décembre a été annulé. Nouvelle demande à venir.", "cancel", None),
    ("Le rendez-vous de demain a été annulé par le patient, un autre sera fixé plus tard.", "cancel", None),
    ("Merci d'annuler BIQ-5300. Nouvelle demande : interprète arabe le 15 décembre à 13h30.", "cancel", "BIQ-005300"),
])
def test_intents_and_references(directory, text, intent, ref):
    got = p(directory, text)
    assert (got["intent"], got["ref"]) == (intent, ref)


def test_chart_number_is_not_a_reference(directory):
    assert p(directory, "Interprète dari pour M. H. (dossier 4471203) le 8 décembre à 10h.")["ref"] is None


def test_form_labels_english(directory):
    text = ("Location: CLSC Verdun\nMode: Video\nSource language: English\nTarget language: Tamil\n"
            "Date: 2026-12-04\nStart time: 1:30 PM\nDuration: 45 minutes\nInterpreter type: External provider\n"
            "Should the interpreter notify the user of the appointment? Yes\nUser's phone: 514 555 0101\n"
            "Reason: Follow-up\nMessage to the interpreter: Call the front desk.\n")
    got = p(directory, text)
    assert got["location"] == "clsc-verdun" and got["mode"] == "video"
    assert (got["source_language"], got["target_language"]) == ("en", "ta")
    assert got["appointments"] == [{"date": "2026-12-04", "start_time": "13:30", "duration_minutes": 45}]
    assert got["interpreter_type"] == "external" and got["notify_user"] is True
    assert got["user_phone"] == "514-555-0101" and got["reason"] == "Follow-up"
    assert got["message_to_interpreter"] == "Call the front desk."


def test_form_label_variants(directory):
    text = ("Interpreter request form\nPatient's language: Bengali\nAppointment date: December 9, 2026\n"
            "Appointment time: 2:15 PM\nExpected duration: 1 hour\nPlace: Jewish General Hospital\nFormat: Phone\n"
            "Notify the patient: No\nReason for appointment: Cardiology consult\n")
    got = p(directory, text)
    assert (got["target_language"], got["location"], got["mode"]) == ("bn", "hopital-general-juif", "phone")
    assert got["appointments"] == [{"date": "2026-12-09", "start_time": "14:15", "duration_minutes": 60}]
    assert (got["notify_user"], got["reason"]) == (False, "Cardiology consult")
    text = ("Langue parlée par l'usager : Tigrigna\nDate du rdv : 9 décembre\nHeure prévue : 10 h 30\n"
            "Durée estimée : 90 minutes\nLieu du rendez-vous : CLSC de Saint-Michel\nType de rencontre : Téléphonique\n"
            "Aviser la patiente : Oui\nTéléphone de la patiente : 514 555-0166\nMotif du rendez-vous : Suivi de grossesse\n")
    got = p(directory, text)
    assert (got["target_language"], got["location"], got["mode"]) == ("ti", "clsc-saint-michel", "phone")
    assert got["appointments"] == [{"date": "2026-12-09", "start_time": "10:30", "duration_minutes": 90}]
    assert (got["notify_user"], got["user_phone"], got["reason"]) == (True, "514-555-0166", "Suivi de grossesse")


@pytest.mark.parametrize("text,expected", [
    ("Interprète pendjabi le 2 décembre, 9h. Ce sera une rencontre de 2 heures avec l'équipe de santé mentale au "
     "CLSC Parc-Extension.", "rencontre avec l'équipe de santé mentale"),
    ("Interprète pendjabi le 2 décembre, 9h. Il s'agit d'une rencontre de 2 heures avec l'équipe de santé mentale.",
     "rencontre avec l'équipe de santé mentale"),
    ("Arabic interpreter Dec 2 at 9. It will be a 2-hour meeting with the mental health team at CLSC Metro.",
     "meeting with the mental health team"),
    ("Interprète arabe le 2 décembre à 9h. Ce sera en personne, 1h.", None),
    ("Interprète arabe le 2 décembre à 10h pour une rencontre de 1h au CLSC. En personne.", None),
    ("Interprète tamoul pour une rencontre de 2 heures le 3 décembre en avant-midi.", None),
])
def test_a_reason_read_past_its_length(directory, text, expected):
    assert p(directory, text)["reason"] == expected


def test_the_users_phone_through_a_relative_named_by_an_initial(directory):
    got = p(directory, "Interprète vietnamien le 16 décembre à 13h30. L'interprète devra aviser la fille de Mme T. "
                       "(Lan, 514-555-0147) la veille.")
    assert (got["notify_user"], got["user_phone"]) == (True, "514-555-0147")
    got = p(directory, "Tamil interpreter Dec 16 at 1:30 pm. Please call the daughter at 514-555-0148 the day before.")
    assert (got["notify_user"], got["user_phone"]) == (True, "514-555-0148")


def test_two_form_fields_on_one_line_and_a_mode_is_no_reason(directory):
    got = p(directory, "Interprète à prioriser : aucun. Type : BI du RSSS.", reply=True,
            subject="RE: [BIQ-006300] Demande incomplète")
    assert (got["preferred_interpreter"], got["interpreter_type"]) == (None, "bi_rsss")
    got = p(directory, "Hi, the start time is 9:45 and it's in person at the clinic. Thanks", reply=True,
            subject="RE: [BIQ-006300] Incomplete request")
    assert (got["mode"], got["reason"]) == ("in_person", None)


def test_a_reason_stops_before_the_patients_name(directory):
    got = p(directory, "J'aimerais réserver l'interprète Li Wei pour la rencontre de suivi de M. Chen le 10 décembre à 11h.")
    assert got["reason"] == "rencontre de suivi"
    got = p(directory, "Arabic interpreter for the follow-up visit of Mrs. Haddad on Dec 10 at 11 am.")
    assert got["reason"] == "follow-up visit"


def test_reason_phrases(directory):
    assert p(directory, "Interprète arabe le 8 décembre à 10h pour une consultation en cardiologie au CHUM.")["reason"] \
        == "consultation en cardiologie"
    assert p(directory, "Interpreter on Dec 8 at 10 am for his annual check-up.")["reason"] == "annual check-up"


@pytest.mark.parametrize("text,expected", [
    ("espagnol, demain 10h, CLSC PE, suivi de grossesse, 1h, en personne", "suivi de grossesse"),
    ("Arabic interpreter Dec 9 10am JGH, cardiology follow-up, 1h, in person", "cardiology follow-up"),
    ("Vietnamese interpreter at the JGH on Dec 10 at 8:45 am for about 2 hours (endoscopy follow-up).",
     "endoscopy follow-up"),
    ("Interprète arabe, 8 déc 10h, HMR, 1h, évaluation en ergothérapie", "évaluation en ergothérapie"),
    ("Need Tigrinya interp. Dec 4, 10:30-11:30, CLSC St-Michel, in-person. Prenatal.", "Prenatal"),
    ("Interprète arabe le 8 déc à 10h, 1h, HMR. Cardiologie.", "Cardiologie"),
    ("Hi, need a Tamil interpreter Thursday 2pm at HGL, in person, 1.5h. Pre-op teaching. Thx!", "Pre-op teaching"),
    ("Armenian interpreter on Dec. 3rd @ 2:45pm, 1 hr, at Santa Cabrini. Pre-surgery consult.", "Pre-surgery consult"),
    ("Arabic interpreter Dec 8 at 10 am, 1 hr, at the JGH. Same visit as last week.", None),
    # a parenthesis or a list item that is not why
    ("Interprète arabe le 8 décembre à 10h (dossier 4471203), 1h.", None),
    ("Interprète arabe le 8 décembre à 10h à l'HGJ (clinique externe), 1h.", None),
    ("Interprète arabe le 8 décembre à 10h au CHUM (Teams), 1h.", None),
    ("Interprète arabe, 8 déc 10h, HMR, rendez-vous habituel, 1h", None),
    ("Interprète arabe, 8 déc, rencontre de 1h, HMR", None),
])
def test_a_reason_as_a_list_item_or_in_parentheses(directory, text, expected):
    assert p(directory, text)["reason"] == expected


def test_an_appointment_named_without_its_purpose_is_no_reason(directory):
    text = "Interprète mandarin pour les rencontres suivantes :\n- 1er décembre, 9h à 10h\n- 8 décembre, 9h à 10h\n"
    assert p(directory, text)["reason"] is None
    assert p(directory, "Interprète arabe le 8 décembre à 10h pour son rendez-vous.")["reason"] is None
    got = p(directory, "Interprète turc le 3 décembre à 13h. Rencontre d'environ 2h avec la travailleuse sociale.")
    assert got["reason"] == "Rencontre avec la travailleuse sociale"
    got = p(directory, "Interprète arabe le 8 déc à 10h au CLSC Métro. Rencontre avec l'ergothérapeute.")
    assert got["reason"] == "Rencontre avec l'ergothérapeute"
    got = p(directory, "Interprète. Rencontre en arabe avec le médecin le 8 déc à 10h.")
    assert got["reason"] == "Rencontre avec le médecin"


def test_reason_cues_are_whole_words(directory):
    got = p(directory, "Pour la demande BIQ-5200, pourriez-vous ajouter que l'interprète doit monter au 2e étage?",
            reply=True)
    assert got["reason"] is None
    got = p(directory, "Interpreter on Dec 1 at 10 am, 1 hour, in the format of a video call for a follow-up.")
    assert got["reason"] == "follow-up"


def test_a_reference_after_for_is_not_a_reason_and_tmrw_is_tomorrow(directory):
    got = p(directory, "For BIQ 5301 the appointment is now 45 minutes instead of 30.")
    assert got["reason"] is None and got["appointments"] == [{"date": None, "start_time": None, "duration_minutes": 45}]
    assert appts(directory, "hi can I get a vietnamese interpreter tmrw 11am at clsc metro 30 min thx") == [
        ("2026-11-21", "11:00", 30)]


def _chat(text: str, replied: str | None = None, from_bot: bool = True) -> dict:
    msg = {"message_id": 5, "date": 1795000000, "text": text, "chat": {"id": 7, "type": "private"},
           "from": {"id": 7, "is_bot": False, "first_name": "K", "language_code": "fr"}}
    if replied is not None:
        msg["reply_to_message"] = {"message_id": 4, "date": 1794990000, "chat": {"id": 7, "type": "private"},
                                   "from": {"id": 1, "is_bot": from_bot, "first_name": "biq"}, "text": replied}
    return {"update_id": 1, "message": msg}


def test_a_chat_reply_to_the_bots_message_takes_its_reference(directory):
    from parsers.request import parse_update

    ack = "Bonjour,\nNous avons bien reçu votre demande BIQ-000123. Voici ce que nous avons compris :"
    got = parse_update(directory, _chat("annuler", ack))[0].as_contract()
    assert (got["intent"], got["ref"]) == ("cancel", "BIQ-000123")
    got = parse_update(directory, _chat("finalement à 15h", ack))[0].as_contract()
    assert (got["intent"], got["ref"], got["appointments"][0]["start_time"]) == ("modify", "BIQ-000123", "15:00")
    # a list of several requests, or a message that is not the bot's, names none
    listing = "Vos demandes :\nBIQ-000123 — 3 décembre\nBIQ-000124 — 4 décembre"
    assert parse_update(directory, _chat("annuler", listing))[0].ref is None
    assert parse_update(directory, _chat("annuler", ack, from_bot=False))[0].ref is None


@pytest.mark.parametrize("text", [
    "Hi, just checking in on my request for next Tuesday — do we have someone?",
    "Bonjour, pouvez-vous me confirmer le nom de l'interprète pour demain? BIQ-000703",
    "Bonjour, avez-vous quelqu'un pour ma demande de jeudi?",
    "Hi, can I see all my upcoming interpreter bookings?",
    "Bonjour, avez-vous reçu ma demande d'hier pour l'arabe?",
    "Hello, did you get my request from yesterday for a Farsi interpreter?",
])
def test_more_ways_to_ask_where_a_request_stands(directory, text):
    assert p(directory, text)["intent"] == "status"


@pytest.mark.parametrize("subject,body,intent", [
    ("Annulation BIQ-5300", "", "cancel"),
    ("Annulation - BIQ-005300", "Merci", "cancel"),
    ("Statut BIQ-5300?", "", "status"),
    ("RE: [BIQ-005300] Annulation confirmée", "Merci!", "other"),    # a reply: the subject is ours
    ("Merci - annulation de la semaine dernière", "Merci pour votre aide!", "other"),  # no reference
])
def test_a_new_messages_subject_can_say_what_it_wants(directory, subject, body, intent):
    got = p(directory, body, subject=subject, reply=subject.startswith("RE:"))
    assert got["intent"] == intent


@pytest.mark.parametrize("text,preferred", [
    ("Interprète arabe le 8 déc à 10h, pas Karim Aziz svp.", None),           # a preference against
    ("Interprète arabe le 8 déc à 10h, pas avec M. Aziz svp.", None),
    ("Interprète espagnol le 8 déc à 10h. Interprète à prioriser : Pedro Alvarez.", "Pedro Alvarez"),
    ("Interprète espagnol le 8 déc à 10h, de préférence Pedro Alvarez (externe).", "Pedro Alvarez"),
    ("Spanish interpreter Dec 8 at 10, preferably Pedro Alvarez.", "Pedro Alvarez"),
    ("Interprète arabe le 8 déc à 10h, avec Mme Haddad si possible.", "int-006"),
    ("Interprète portugais le 8 déc. à 13h, 1h, idéalement Ana Sofia.", "int-017"),   # given names only one has
    ("Interprète le 8 déc à 13h, idéalement Jean Tremblay.", "Jean Tremblay"),     # not in the roster
    ("Somali interpreter Dec 8 at 10 am. Preferred interpreter: Abdi Warsame", "int-013"),  # a short form
    ("Somali interpreter Dec 8 at 10 am. Preferred interpreter: A. Warsame", "int-013"),
    ("Interprète arabe le 8 déc à 10h, idéalement Ahmed Haddad.", "Ahmed Haddad"),  # not Nadia Haddad
])
def test_preferred_interpreter_cues(directory, text, preferred):
    assert p(directory, text)["preferred_interpreter"] == preferred


@pytest.mark.parametrize("text,place", [
    ("Interprète arabe le 8 déc à 10h. Le patient est suivi au CLSC Métro mais le rdv est à l'HGJ.",
     "hopital-general-juif"),
    ("Interprète arabe le 8 déc à 10h au CLSC Métro. Le patient a été référé par le CHUM.", "clsc-metro"),
    ("Arabic interpreter Dec 8 at 10 am at CLSC Metro; the patient was referred by the JGH.", "clsc-metro"),
    ("Interprète arabe pour une rencontre de suivi au CLSC Métro le 8 déc à 10h.", "clsc-metro"),
])
def test_where_the_patient_is_followed_or_referred_from_is_not_the_place(directory, text, place):
    assert p(directory, text)["location"] == place


def test_messages_for_the_interpreter_and_the_bank_in_other_words(directory):
    got = p(directory, "Interprète arabe le 8 déc à 10h. Pour l'interprète : se présenter à l'accueil du 2e étage.\n"
                       "Note pour la banque : facturer au programme SAPA.")
    assert got["message_to_interpreter"] == "se présenter à l'accueil du 2e étage."
    assert got["notes_to_coordinator"] == "facturer au programme SAPA."
    got = p(directory, "Interprète arabe le 8 déc à 10h. Note pour la coordination : dossier DPJ, discrétion svp.")
    assert got["notes_to_coordinator"] == "dossier DPJ, discrétion svp."
    got = p(directory, "Arabic interpreter Dec 8 at 10am.\nNote to coordinator: please bill program 12.")
    assert got["notes_to_coordinator"] == "please bill program 12."
    got = p(directory, "Arabic interpreter Dec 8 at 10am.\nFor the interpreter: ask for Dr. Lee at reception.\n"
                       "For the coordinator: this is urgent.")
    assert (got["message_to_interpreter"], got["notes_to_coordinator"]) == ("ask for Dr. Lee at reception.",
                                                                         "this is urgent.")


@pytest.mark.parametrize("text,source", [
    ("Interprète de l'anglais vers le somali le 8 déc à 10h.", "en"),
    ("Interprète somali (le médecin est anglophone) le 8 déc à 10h.", "en"),
    ("Somali interpreter Dec 8 at 10 am; the doctor speaks English only.", "en"),
    ("Interprète somali le 8 déc à 10h. Le patient parle un peu anglais.", None),   # the patient's, not the source
])
def test_the_clinicians_english_is_the_source(directory, text, source):
    got = p(directory, text)
    assert (got["source_language"], got["target_language"]) == (source, "so")


@pytest.mark.parametrize("text,kind,notify", [
    ("Interprète arabe le 8 déc à 10h, un interprète de la BI du RSSS svp.", "bi_rsss", None),
    ("Interprète arabe le 8 déc à 10h, un interprète externe (agence) convient.", "external", None),
    ("Interprète arabe le 8 déc à 10h. Pas besoin de rappel à l'usager.", None, False),   # was True
    ("Arabic interpreter Dec 8 at 10 am. No reminder call needed.", None, False),
    ("Interprète arabe le 8 déc à 10h. L'usager a déjà été avisé.", None, False),
    ("Bonjour Banque d'interprètes, interprète arabe le 8 déc à 10h.", None, None),
])
def test_interpreter_type_and_notify_in_passing(directory, text, kind, notify):
    got = p(directory, text)
    assert (got["interpreter_type"], got["notify_user"]) == (kind, notify)


def test_a_quote_under_a_bare_attribution_line_is_not_read(directory):
    raw = (b"From: Julie Roy <julie.roy.ccomtl@ssss.gouv.qc.ca>\r\nTo: biq@ssss.gouv.qc.ca\r\n"
           b"Subject: RE: [BIQ-000125] Request received\r\nDate: Wed, 25 Nov 2026 10:00:00 -0500\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Please make it 2 pm instead.\r\n\r\nBIQ wrote:\r\n"
           b"We received your request for a Tigrinya interpreter on December 8 at 10:00 (60 min).\r\n")
    got = parse_email(directory, raw)[0].as_contract()
    assert (got["intent"], got["target_language"], got["appointments"]) == (
        "modify", None, [{"date": None, "start_time": "14:00", "duration_minutes": None}])


@pytest.mark.parametrize("marker", [
    "-----Original Message-----\nFrom: Dr. Lemieux [mailto:lemieux@ssss.gouv.qc.ca]\n"
    "Sent: Tuesday, November 24, 2026 4:02 PM\nTo: Tremblay, Sophie\nSubject: interprète\n",
    "-------- Message transféré --------\nSujet : \tinterprète\nDate : \tTue, 24 Nov 2026 16:02:11 -0500\n"
    "De : \tDre Lemieux <lemieux@ssss.gouv.qc.ca>\n",
    "________________________________\nDe : Dre Lemieux <lemieux@ssss.gouv.qc.ca>\nEnvoyé : 24 novembre 2026 16:02\n"
    "À : Sophie Tremblay\nObjet : interprète\n",
])
def test_a_forwarded_request_counts_whatever_the_mail_client(directory, marker):
    raw = ("From: Sophie Tremblay <sophie.tremblay.ccomtl@ssss.gouv.qc.ca>\nTo: biq@ssss.gouv.qc.ca\n"
           "Subject: TR: interprète\nDate: Wed, 25 Nov 2026 10:00:00 -0500\nContent-Type: text/plain; charset=utf-8\n\n"
           f"Pouvez-vous traiter cette demande svp.\n\n{marker}\n"
           "Peux-tu faire une demande pour un interprète roumain le 2 décembre à 11h, 1h, à l'Hôpital Fleury, "
           "en personne? Merci\n").encode()
    got = parse_email(directory, raw)[0].as_contract()
    assert (got["intent"], got["target_language"], got["location"], got["appointments"]) == (
        "new_request", "ro", "hopital-fleury", [{"date": "2026-12-02", "start_time": "11:00", "duration_minutes": 60}])


@pytest.mark.parametrize("text,also", [
    ("Hi, please cancel BIQ-6400 and BIQ-6401, the family moved.", ["BIQ-006401"]),
    ("Svp annuler les demandes BIQ-6400, BIQ-6401 et BIQ-6402.", ["BIQ-006401", "BIQ-006402"]),
    ("Svp annuler la BIQ-6400. La BIQ-6401 est maintenue.", []),
    ("Please cancel BIQ-6400 (it replaces BIQ-6401).", []),
])
def test_a_cancel_of_several_listed_requests(directory, text, also):
    got = parse_text(directory, text, today=FRI)
    assert (got.intent, got.ref, got.also_refs) == ("cancel", "BIQ-006400", also)
