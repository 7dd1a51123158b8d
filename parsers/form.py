"""The bank's web form, pasted as 'Label : value' lines (or an HTML table made into such lines).

Labels are matched on folded text, French and English; the value is what follows on the line.
An empty value means the field was left blank, which is recorded (it is not the same as absent).
"""

from __future__ import annotations

import re

from .text import fold

LABELS: dict[str, tuple[str, ...]] = {
    "location": ("emplacement", "location", "lieu", "installation", "site", "etablissement", "lieu du rendez-vous",
                 "appointment location", "place"),
    "address": ("adresse", "address", "local", "salle", "room"),
    "mode": ("mode", "mode d'intervention", "modalite", "type de rendez-vous", "format", "type de rencontre",
             "mode d'interpretation", "appointment type", "type of appointment", "mode of interpretation"),
    "source_language": ("langue de depart", "source language", "langue source", "from language"),
    "target_language": ("langue d'arrivee", "target language", "langue cible", "langue demandee",
                        "langue de l'usager", "language", "langue", "to language", "langue parlee",
                        "langue parlee par l'usager", "langue de l'usagere", "langue du patient", "langue requise",
                        "patient's language", "patient language", "language needed", "language requested"),
    "date": ("date", "date du rendez-vous", "appointment date", "jour", "date du rdv", "date of appointment",
             "date of the appointment", "quand"),
    "start_time": ("heure de debut", "start time", "heure", "time", "heure du rendez-vous", "heure du rdv",
                   "appointment time", "heure prevue"),
    "duration": ("duree", "duration", "duree prevue", "length", "duree estimee", "duree du rendez-vous",
                 "expected duration", "estimated duration", "combien de temps"),
    "interpreter_type": ("type d'interprete", "interpreter type", "type of interpreter"),
    "preferred_interpreter": ("interprete a prioriser", "preferred interpreter", "interprete prefere",
                              "interprete souhaite", "interprete demande", "interpreter requested"),
    "notify_user": ("l'interprete doit-il aviser l'usager du rendez-vous", "l'interprete doit aviser l'usager",
                    "aviser l'usager", "should the interpreter notify the user of the appointment",
                    "should the interpreter notify the user", "notify the user", "notify user",
                    "l'interprete doit-il aviser l'usager", "notify the patient", "aviser le patient",
                    "aviser la patiente", "aviser l'usagere"),
    "user_phone": ("telephone de l'usager", "user's phone", "user phone", "patient's phone",
                   "telephone du patient", "telephone de l'usagere", "numero de l'usager", "user phone number",
                   "telephone de la patiente", "patient phone", "patient's phone number"),
    "reason": ("raison de la demande", "raison", "reason for the request", "reason", "motif",
               "motif de la demande", "objet du rendez-vous", "reason for appointment", "reason for the appointment",
               "motif du rendez-vous", "motif de consultation", "raison du rendez-vous"),
    "message_to_interpreter": ("message a l'interprete", "message to the interpreter", "message to interpreter",
                               "message for the interpreter", "message for interpreter", "note a l'interprete",
                               "note to the interpreter", "note to interpreter", "notes to interpreter",
                               "notes for the interpreter", "notes pour l'interprete", "note pour l'interprete"),
    "notes_to_coordinator": ("notes au coordinateur", "note au coordinateur", "notes au coordonnateur",
                             "message a la banque d'interpretes", "message a la banque",
                             "notes to the coordinator", "note to the coordinator", "notes to coordinator",
                             "message to the interpreter bank", "message to the bank", "notes to the bank",
                             "note to the bank", "notes for the coordinator", "note for the coordinator"),
}

_ALTS = sorted(((re.escape(lbl), field) for field, lbls in LABELS.items() for lbl in lbls),
               key=lambda p: -len(p[0]))
LINE = re.compile(
    r"^[ \t>*\-•]*(" + "|".join(a for a, _ in _ALTS) + r")[ \t*]*(?:\?[ \t]*)?(?::|\t| - |\?)[ \t*]*(.*)$",
    re.M)
_FIELD_OF = {lbl: field for field, lbls in LABELS.items() for lbl in lbls}
# "Interprète à prioriser : aucun. Type : BI du RSSS.": two fields on one line
NEXT_LABEL = re.compile(r"[.;,]\s+(?:" + "|".join(a for a, _ in _ALTS) + r"|type)\s*:")
FREE_TEXT_CUE = re.compile(r"^(?:" + "|".join(a for a, _ in _ALTS) + r")\s*$")


def form_fields(text: str) -> dict[str, tuple[str, int, int]]:
    """Labelled values: field → (original value, start, end offsets in *text*). First wins."""
    folded = fold(text)
    out: dict[str, tuple[str, int, int]] = {}
    for m in LINE.finditer(folded):
        field = _FIELD_OF.get(m.group(1))
        if not field or field in out:
            continue
        # "Date : 2026-12-01" is a form line; "date du rendez-vous est…" inside a sentence is not
        end = m.end(2)
        nxt = NEXT_LABEL.search(folded, m.start(2), end)
        if nxt:
            end = nxt.start()
        value = text[m.start(2):end].strip().strip("*").strip()
        out[field] = (value, m.start(2), end)
    return out
