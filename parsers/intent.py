"""What the sender wants (new request, cancel, modify, status, other), the reference they cite,
and the language they write in (French unless the text reads as English)."""

from __future__ import annotations

import re

from .text import PAST_APPOINTMENT, scanner

REF_TAG = re.compile(r"\[\s*biq[\s\-#:]*0*(\d{1,9})\s*\]")
REF_TEXT = scanner(r"bdr#",
    r"(?:\bbiq[\s\-#:]*0*(\d{1,9})\b|"
    r"\b(?:demande|request|requete|req|reservation|booking|ref|reference)\s*(?:no\.?|n°|nº|no|numero|number|num|#)\s*0*(\d{3,9})\b|"
    r"\b(?:ref|reference)\.?\s*:?\s*0*(\d{3,9})\b|"
    r"\b(?:demande|request|requete|reservation|booking)\s+#?0*(\d{4,9})\b|"
    r"(?<![\w#])#\s?0*(\d{3,9})\b)")


def normalize_ref(number: str | int) -> str:
    return f"BIQ-{int(number):06d}"


def find_ref(subject_folded: str, body_folded: str) -> str | None:
    m = REF_TAG.search(subject_folded)
    if m:
        return normalize_ref(m.group(1))
    for text in (body_folded, subject_folded):
        refs = find_refs(text)
        if refs:
            return refs[0]
    return None


def _ref_mentions(text: str) -> list[tuple[str, int, int]]:
    """(reference, start, end) of each reference *text* cites (not a chart, room or extension number)."""
    out = []
    for m in REF_TEXT.finditer(text):
        num = next(g for g in m.groups() if g)
        before = text[max(0, m.start() - 20):m.start()]
        if not re.search(r"(?:dossier|chart|file|mrn|ramq|local|bureau|room|poste|ext)\W*$", before):
            out.append((normalize_ref(num), m.start(), m.end()))
    return out


def find_refs(text: str) -> list[str]:
    """Every reference *text* cites, in order, once each."""
    return list(dict.fromkeys(r for r, _, _ in _ref_mentions(text)))


LIST_JOIN = re.compile(r"^\s*(?:,|;|/|&|et|and|ainsi que|as well as)?\s*(?:(?:et|and)\s+)?(?:la |le |les |the |l')?"
                       r"(?:demandes? |requests? )?$")


def listed_refs(text: str) -> list[str]:
    """The references of a list ('BIQ-6400 et BIQ-6401', 'BIQ-1, BIQ-2 and BIQ-3'): the first run of
    references joined only by commas or 'and'; a single one is no list."""
    found = _ref_mentions(text)
    run = found[:1]
    for mention in found[1:]:
        if not LIST_JOIN.match(text[run[-1][2]:mention[1]]):
            break
        run.append(mention)
    refs = list(dict.fromkeys(r for r, _, _ in run))
    return refs if len(refs) > 1 else []


def only_ref(folded: str) -> str | None:
    """The one reference a text cites, or None when it cites none or several (a list of requests)."""
    refs = {normalize_ref(next(g for g in m.groups() if g)) for m in REF_TEXT.finditer(folded)}
    return refs.pop() if len(refs) == 1 else None


CANCEL = re.compile(r"\b(?:annuler|annulez|annule|annulation|annulee|cancel|cancelled|canceled|cancellation|"
                    r"n'(?:ai|a|avons|aurai|aura|aurons|auront|ont) plus besoin|"
                    r"(?:n'est|ne sera) plus (?:necessaire|requise?)|"
                    r"no longer (?:need|needed|required|necessary)|(?:don't|do not|won't|will not) need .{0,20}anymore|"
                    r"(?:is|are) not (?:needed|required) anymore|"
                    r"liberer l'interprete|release the interpreter|"
                    r"n'(?:ai|a|avons|aurai|aura|aurons|auront|ont)(?: finalement)? pas besoin (?:de l'|d'un |d'une |du )?"
                    r"(?:interprete|service)|(?:won't|will not|don't|do not|no longer) need (?:the|an|our|any) interpreter|"
                    r"call(?:ed)? off|(?:(?:n'aura|n'auront) pas lieu|(?:will not|won't) (?:take place|happen|go ahead))"
                    r"(?!\s+(?:au|aux|a|en|dans|le|la|par|mais|comme|at|in|on|by|but|as|via|over)\b)|"
                    r"(?:appointment|meeting|booking|session|visit|it|rdv|rendez-vous)\b[^.\n]{0,25}?\s(?:is|are)\s+(?:now\s+)?"
                    r"off\b(?![-/])|"
                    r"laisser tomber|retir(?:e|er|ons) (?:ma|la|notre|cette) demande|"
                    r"withdraw(?:ing|n)? (?:my |the |our |this )?(?:request|booking)|"
                    r"(?:remise?|reportee?) a (?:une date ulterieure|plus tard|une autre fois)|"
                    r"postponed (?:indefinitely|until further notice)|"
                    r"(?:patiente?|usagere?|famille|family|cliente?|parents?)\s+(?:ne viendra pas|ne viendront pas|"
                    r"(?:ne pourra|ne pourront) pas (?:venir|se presenter|etre presente?)|"
                    r"(?:won't|will not|cannot|can't) (?:be )?(?:coming|come|make it|attend))"
                    r"(?![^.\n]{0,40}\b(?:seule?|seulement|only|mais|but|instead|a sa place|sera la|will be there))|"
                    r"disregard (?:my|the|this|our) (?:previous |last |earlier )?(?:request|booking|email)|"
                    r"ignorer? (?:ma|la|cette|notre) (?:demande|requete|reservation))\b")
# the patient did not come: news for the bank, nothing to change
NO_SHOW = re.compile(r"\b(?:no-show(?:ed)?|no show(?:ed)?|did not show|didn't show|ne s'est pas presentee?|"
                     r"ne s'est jamais presentee?)\b")
STATUS = re.compile(
    r"\b(?:mes demandes|my requests|liste de mes|list of my|where (?:is|are) (?:it|my|we)|ou (?:elle|il) en est|"
    r"ou en est|any update|an update|des nouvelles|suivi de (?:la|ma|mes) demande|status|statut|"
    r"toujours pas recu|still waiting|pas encore (?:recu|eu) de confirmation|est-ce confirme|is it confirmed|"
    r"been assigned|been confirmed|avez-vous trouve|avez trouve|vous avez trouve|a-t-on trouve|"
    r"trouve quelqu'un|found someone|found an interpreter|mes reservations|my bookings|upcoming requests|"
    r"demandes en cours|demandes a venir|interprete (?:a|a-t-il|a-t-elle) ete (?:trouvee?|assignee?)|"
    r"pu trouver|trouver quelqu'un|interpreter (?:has been|been) (?:found|assigned)|"
    r"did you find|were you able to find|any news|confirmee?s?\s*\?|confirmed\s*\?|"
    r"still on|toujours (?:prevue?|confirmee?|d'actualite|valide)|(?:acceptee?|accepted|assignee?|assigned)\s*\?|"
    r"who is the interpreter|who will (?:be )?interpret|qui sera l'interprete|qui est l'interprete|"
    r"(?:le )?nom de l'interprete|name of the interpreter|interpreter's name|"
    r"(?:my|all my) (?:\w+ ){0,2}(?:requests|bookings|reservations)|mes (?:\w+ ){0,2}(?:demandes|reservations)|"
    r"checking (?:in )?on (?:my|the|our) (?:request|booking)|follow(?:ing)? up on (?:my|the|our) (?:request|booking)|"
    r"do (?:we|you) have (?:someone|somebody|anyone|an interpreter)|"
    r"(?:avez|avons)-(?:vous|nous) (?:quelqu'un|un interprete)|"
    r"quel(?:le)? interprete (?:sera|est|a ete)|which interpreter|(?:toujours )?pas (?:eu )?de nouvelles|"
    r"no news|haven't heard|have not heard|(?:what|which) requests|quelles demandes|"
    r"(?:anyone|someone|somebody|an interpreter) (?:accepted|taken|confirmed)|quelqu'un a (?:accepte|confirme)|"
    r"(?:est-elle|est-il|is it|is this|is my|is the)\b[^.?\n]{0,30}\bconfirm(?:ee?|ed)\b)")
# "who's the interpreter for tomorrow's 10am appointment?", "l'interprète de demain 10h est-il confirmé ?":
# a question about a booking already made, even when it names the booking's details
ABOUT_BOOKING = re.compile(
    r"\b(?:who(?:'s| is| will be) (?:the|our|my) interpreter|qui (?:est|sera) (?:l'interprete|notre interprete)|"
    r"(?:l'interprete|the interpreter)\b[^.?!\n]{0,60}\b(?:est(?:-il)?|a-t-il ete|is|has been|been)\s+"
    r"(?:bien\s+|already\s+)?(?:confirme|confirmed|assigne|assigned|trouve|found)\b)[^.!\n]*\?")
# "avez-vous reçu ma demande d'hier pour l'arabe ?": about a request already sent, whatever it names
RECEIVED = re.compile(r"\b(?:(?:avez-vous|avez vous|vous avez) (?:bien )?recu ma (?:demande|requete|reservation)|"
                      r"(?:haven't|have not|didn't|did not|never) (?:yet )?(?:received|gotten|got|heard)\b[^.?!\n]{0,20}"
                      r"\b(?:confirmation|reply|answer|response|back)|"
                      r"(?:n'ai|n'avons|n'ai toujours|n'avons toujours) (?:pas|jamais|rien) (?:encore )?(?:recu|eu)\b[^.?!\n]{0,20}"
                      r"\b(?:confirmation|reponse|nouvelles|retour)|"
                      r"(?:did|have) you (?:get|got|receive|received|gotten) my (?:request|booking|email)|"
                      r"(?:ma demande|my request) (?:a-t-elle|est-elle|has it|was it) (?:bien )?(?:ete )?(?:recue|received))\b")
MODIFY = re.compile(
    r"\b(?:modifier|modification|modif|changement|changer|change|changed|deplace|deplacer|deplacee|reporter|"
    r"reporte|reschedule|rescheduled|move|moved|au lieu de|instead of|plutot|correction|finalement|"
    r"now be|will now|sera finalement|desormais|nouvelle heure|nouvelle date|new time|new date|"
    r"et non|rather than|prioriser|ajouter|add|prolonger|extend|raccourcir|shorten|"
    r"l'adresse est|the address is|nouvelle adresse|new address|push(?:ed|ing)?\b[^.\n]{0,20}\b(?:to|back|forward|by)|postpone|postponed|"
    r"repousser|repousse|decaler|decale|avancer|devancer|devance)\b")
NEW = re.compile(
    r"\b(?:besoin d'un|besoin d'une|besoin|reserver|reservation|demande d'interprete|aurais besoin|aurions besoin|"
    r"il me faudrait|pourrais avoir|pourrait avoir|possible d'avoir|need|needed|book|request an?|requesting|"
    r"would like|could (?:we|i|you)|nouveau rendez-vous|nouvelle demande|autre rendez-vous|another appointment|"
    r"new appointment|sollicite|interpretes?|interpreters?|formulaire)\b")
MOVED = re.compile(r"\b(?:(?:est|a ete|sera|is|has been|was|been) (?:reporte|deplace|devance|moved|rescheduled|"
                   r"postponed|pushed back)|(?:reporter|deplacer|devancer|reschedule|move|postpone) (?:le|la|the|my|mon|ma)"
                   r" (?:rendez-vous|rdv|rencontre|appointment|meeting|interprete|interpreter))\b")
# a greeting, then thanks or an agreement
THANKS = (r"^\W*(?:(?:bonjour|allo|hi|hello)\W+)?(?:merci|thanks|thank you|thx|parfait|super|ok|d'accord|genial|"
          r"great|perfect|excellent)")
OTHER_ONLY = re.compile(
    THANKS + r"(?:\s+(?:beaucoup|bien|a lot|so much|very much|encore|again|pour (?:la|le|votre|your) \w+|"
    r"for (?:the|your) \w+))*[\s!.,:)(\w]{0,25}$")
NOTIFICATIONS = re.compile(r"\b(?:desactiver|activer|reactiver|turn (?:off|on)|disable|enable|stop|arreter)\s+"
                           r"(?:les |the |my |mes )?(?:notifications|courriels|emails|avis)")

FR_WORDS = set("le la les de des du un une pour je j nous vous est et au aux avec merci bonjour besoin "
               "interprete demande rendez vous sur dans qui que ce sera svp cette mon ma mes".split())
EN_WORDS = set("the a an for to of is i we you and at with thanks thank hi hello need please "
               "interpreter request appointment on in this be will my our could would "
               "pls plz thx can get me it cancel book tomorrow today next from your".split())


def writing_language(folded: str, hint: str = "") -> str:
    """French unless more English words than French; a tie (a terse "cancel 5142 pls") goes to
    *hint*, the language the sender's app or mail client says they use."""
    words = re.findall(r"[a-z]+", folded)
    fr = sum(w in FR_WORDS for w in words)
    en = sum(w in EN_WORDS for w in words)
    if en == fr:
        return "en" if hint.lower().startswith("en") else "fr"
    return "en" if en > fr else "fr"


NEW_ASKED = re.compile(r"\b(?:nouveau rendez-vous|autre rendez-vous|another appointment|nouvelle demande|new request|"
                       r"un autre|une autre)\b")
# "… a été annulé. Nouvelle demande : le 15 décembre à 13h30": the cancel before it is news
AVAILABLE = re.compile(r"\b(?:do (?:we|you) have|is there|are there|would you have|avez-vous|auriez-vous|y a-t-il|"
                       r"est-ce qu'il (?:y a|reste)|il reste)\b[^?.\n]{0,25}?\b(?:someone|somebody|anyone|an interpreter|"
                       r"interpreters|quelqu'un|un interprete|une interprete|des interpretes)\b")
# "la rencontre de demain est maintenue", "is still going ahead": nothing to change, nothing asked
KEPT = re.compile(r"\b(?:est|sera|reste|demeure) (?:bien )?(?:maintenue?|toujours (?:prevue?|d'actualite|valide))|"
                  r"\b(?:is|will be) still (?:on|going ahead|happening|scheduled|valid)\b|\bstill going ahead\b")
NEW_SAID = re.compile(r"\b(?:nouvelle demande|new request|nouvelle requete)\b(?=[^\n]{0,150}?(?:\d\s*(?:h\b|h\d|:\d\d|am\b|pm\b)|"
                      r"\d\s+(?:janv|fev|mars|avr|mai|juin|juil|aout|sept|oct|nov|dec)|"
                      r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d))")
CONDITION = re.compile(r"\b(?:si|s'il|s'ils|s'elle|if|in case|en cas|au cas|unless|whether|should it)\b")
BACKGROUND = re.compile(r"\b(?:avait|avaient|had)\s+(?:ete|been)\s+$")
WAS = re.compile(r"\b(?:a ete|ont ete|est|sont|etait|was|were|has been|have been|is|got)\s+$")
HOW_TO = re.compile(r"\b(?:(?:je|on|nous) (?:peux|peut|pouvons)|puis-je|peut-on|can (?:i|we)|how|comment|"
                    r"faut-il|do i|should i)\b")


def cancel_stated(folded: str, new_asked: bool = False) -> bool:
    """A cancellation asked for now, not one imagined ("si le rendez-vous est annulé", "if it
    gets cancelled"), told as background ("avait été annulé", or "a été annulé" when the message
    goes on to ask for a new one: *new_asked*) or asked about ("est-ce que je peux annuler une
    demande par courriel ?")."""
    for m in CANCEL.finditer(folded):
        start = max(folded.rfind(c, 0, m.start()) for c in ".!?\n") + 1
        before = folded[start:m.start()]
        if CONDITION.search(before) or BACKGROUND.search(before) or (
                (new_asked or PAST_APPOINTMENT.search(before)) and WAS.search(before)):
            continue  # "la rencontre précédente a été annulée"
        end = re.compile(r"[.!?\n]").search(folded, m.end())
        if end and end.group() == "?" and HOW_TO.search(before) and not REF_TEXT.search(folded):
            continue
        return True
    return False


# not about a request: an absence notice, a thank-you that restates, a question on how things work
OUT_OF_OFFICE = re.compile(
    r"\b(?:out of (?:the )?office|on vacation|on leave|away from the office|i am away|i will be away|"
    r"je suis absente?|je serai absente?|en vacances|en conge|absente? du bureau|de retour le|"
    r"back in the office|will be back)\b")
ACKNOWLEDGED = re.compile(
    THANKS + r"\b[^\n]{0,40}?\b(?:c'est note|bien note|bien recu|noted|got it|see you|a bientot|"
    r"a (?:lundi|mardi|mercredi|jeudi|vendredi|demain))\b")
# not a request either: an announcement to a list, an interpreter offering their services, a price question
NOT_A_REQUEST = re.compile(
    r"\b(?:inscrivez-vous|register (?:here|now|online|via)|webinaire|webinar|infolettre|newsletter|save the date|"
    r"combien (?:coute|coutent|ca coute)|how much (?:does|do|is|are)|quel(?:s)? (?:est|sont) (?:le|les) (?:cout|tarif)s?|"
    r"what (?:is|are) the (?:cost|rate|fee|price)s?)\b")
OFFERING = re.compile(r"\b(?:je suis (?:un |une )?interprete|i am an interpreter|i'm an interpreter|offrir mes services|"
                      r"offer my services|mon cv|my cv|my resume|ma candidature|job application|postuler)\b")
NEED = re.compile(r"\b(?:besoin|need|needed|book|reserver|would like|aimerais|voudrais|requesting)\b")
HOW_QUESTION = re.compile(r"\b(?:comment (?:puis-je|faire|on|peut-on|je)|how (?:do|can|should) (?:i|we)|how to|"
                          r"quelle est la procedure|what is the procedure|de quelle facon)\b")


def intent(folded: str, *, automatic: bool, has_ref: bool, is_reply: bool, has_details: bool,
           has_appointment: bool = False, has_language: bool = False) -> str:
    """Classify the current text. Automatic messages are always 'other' (never answered)."""
    if automatic:
        return "other"
    if NOTIFICATIONS.search(folded):
        return "other"
    if not has_language and OUT_OF_OFFICE.search(folded) and not CANCEL.search(folded):
        return "other"
    if not has_appointment and not has_ref and "?" in folded and HOW_QUESTION.search(folded):
        return "other"
    if not has_ref and not is_reply and (OFFERING.search(folded) or NOT_A_REQUEST.search(folded)
                                         and not NEED.search(folded)):
        return "other"
    if len(folded) < 150 and ACKNOWLEDGED.search(folded) and not MODIFY.search(folded) \
            and not CANCEL.search(folded):
        return "other"
    new_asked = has_details and not has_ref and bool(NEW_SAID.search(folded))
    no_show = NO_SHOW.search(folded)
    if no_show and not NEW_SAID.search(folded) and not MODIFY.search(folded) \
            and not CONDITION.search(folded, max(folded.rfind(c, 0, no_show.start()) for c in ".!?\n") + 1, no_show.start()):
        return "other"
    if cancel_stated(folded, new_asked):
        return "cancel"
    if AVAILABLE.search(folded) and has_appointment and not has_ref and not is_reply \
            and not re.search(r"\b(?:ma|mes|my|notre|our) (?:demandes?|requetes?|reservations?|requests?|bookings?)\b", folded):
        return "new_request"  # "Do you have someone for Tagalog tomorrow at 9:30?": asking for one
    about_booking = ABOUT_BOOKING.search(folded) and not NEED.search(folded)
    if RECEIVED.search(folded) or about_booking or (STATUS.search(folded) and not (has_details and NEW.search(folded) and not has_ref)):
        return "status"
    if has_details and NEW_ASKED.search(folded):
        return "new_request"
    if KEPT.search(folded) and "?" not in folded and not MODIFY.search(folded) \
            and not re.search(r"\d\s*h\b|\dh\d|\d:\d\d|\d\s*(?:am|pm)\b", folded):  # a time given is a change
        return "other"
    if (has_ref or is_reply) and (MODIFY.search(folded) or has_details):
        return "modify"
    if has_details and NEW.search(folded):
        return "new_request"
    if OTHER_ONLY.match(folded.strip()):
        return "other"
    if has_details and MOVED.search(folded):
        return "modify"  # "le rendez-vous est reporté au 10 décembre": which one, the bot asks
    if has_details:
        return "new_request"
    return "other"
