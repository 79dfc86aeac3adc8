"""Clinical-vocabulary shield: section headers and common clinical words are never replaced as PHI.

A detection whose whole text (case-insensitive, trailing colon ignored) is a shield word is dropped:
"History of Present Illness" must not become "History of Present Joe", nor "IMPRESSION:" become
"SHARON:"; one that only begins or ends with shield words loses them ("Pt John Smith": "John
Smith"). The list is general clinical document vocabulary (section names of H&P, discharge and
progress notes, LOINC document section titles), written from that knowledge, not from reading a
de-identification corpus' errors. Words that are also common surnames or first names (Hope, Grace,
Bishop) are deliberately absent: for them the detector decides.

A second rule: real-format synthetic names that carry digits (Synthea's "Bob965", "Keeling57") are
names whatever the tagger says, unless the letters are a shield word or a chemical/lab symbol.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

SHIELD = frozenset(
    """
    abdomen addendum admission admit admitted advice allergies allergy alert anesthesia assessment
    assessments attending chief complaint complaints condition conditions consult consultation course
    diagnoses diagnosis diet discharge disposition encounter evaluation exam examination family findings
    follow followup history hpi illness imaging immunization immunizations impression indication
    indications instructions interval labs laboratory medication medications neuro note notes nursing
    objective observation observations outcome past patient physical plan plans present problem problems pt pts
    procedure procedures prognosis progress radiology reason recommendation recommendations referral
    results review ros signs social status subjective summary surgical symptoms systems treatment
    vaccination vaccine vitals vital wound
    """.split()
)

#: element, ion, lab and respiratory symbols that take digits (Mg2, Fe3, Hb1, Cr51, SaO2, FiO2, EtCO2)
_SYMBOL = frozenset(
    "mg ca fe hb co cr na cl po so no zn cu hba ab abg ph pt vs rr hr bp gt st sp sao pao fio spo svo etco".split()
)

_DIGIT_NAME = re.compile(r"\b([A-Z][a-z]{1,20})(\d{1,4})\b(?![+%/.]\d|[+%])")


def shielded(surface: str) -> bool:
    """Whether a detected span's text is clinical vocabulary (never PHI)."""
    words = re.findall(r"[A-Za-z]+", surface)
    return bool(words) and all(w.lower() in SHIELD for w in words)


#: words that join shield words in headers ("History of Present Illness"), cut from a span's ends with them
_GLUE = frozenset("an and at by for in of on or the to with".split())  # not "a": an initial


def unshielded_part(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``[start, end)`` of ``text`` with shield and joining words cut from both ends (None: nothing else left)."""
    words = list(re.finditer(r"[A-Za-z]+", text[start:end]))
    kept = [i for i, w in enumerate(words) if w.group().lower() not in SHIELD and w.group().lower() not in _GLUE]
    if not words:
        return start, end
    if not kept:
        return None
    head = start if kept[0] == 0 else start + words[kept[0]].start()
    tail = end if kept[-1] == len(words) - 1 else start + words[kept[-1]].end()
    return head, tail


def digit_names(text: str) -> Iterator[tuple[int, int]]:
    """Offsets of capitalised words fused with digits (``Bob965``), the synthetic-name format: the letters
    are a US census first name or surname (3+ letters, or 2 with 2+ digits: "Yi864"), or a word too rare
    to be English (5+ letters with Zipf < 2: "Bogisich"; 4 with Zipf < 1: "Roob"), and neither clinical
    vocabulary nor a lab symbol ("Fio2" stays)."""
    from clinical_nlp.deid.gazetteer import census_ranks, zipf

    first, last = census_ranks()
    for m in _DIGIT_NAME.finditer(text):
        letters = m.group(1).lower()
        if letters in SHIELD or letters in _SYMBOL:
            continue
        census = letters in first or letters in last
        z = zipf(letters)
        rare = (len(letters) >= 5 and z < 2.0) or (len(letters) == 4 and z < 1.0)
        if (census and (len(letters) >= 3 or len(m.group(2)) >= 2)) or rare:
            yield m.start(), m.end()
