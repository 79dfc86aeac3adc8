"""Context rules for names and places: "Mr. X", "Dr. X and Y", "wife Mary", "B. Jones, RRT",
"transferred from X Hospital", "lives in X". Candidate words are checked against the census
name tables and English word frequencies (``gazetteer``) so that "daughter was called" or
"Dr. aware" are not taken for names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from clinical_nlp.deid.gazetteer import census_ranks, us_places, zipf

#: Words never taken for a name by a context rule.
NOT_NAMES = frozenset(
    "the a an and or to of in on at for with was is has had will be by from his her he she pt patient pts "
    "here aware called updated also notified paged who that this these those it its they them their "
    "not no now just still then than as are were been being did does do done can could would should may "
    "in-law law inlaw step today tonight yesterday tomorrow am pm visited visit visiting spoke speaks speaking "
    "came come comes into out up down over re per x ii iii md rn np pa do dr mr mrs ms miss sir "
    "very well all any some other another both each more most first last next new old about after before "
    "home house hospital unit floor room bed team service staff office call phone number cell work "
    "son sons daughter daughters wife husband mother father brother sister family friend friends dtr "
    "aunt uncle niece nephew cousin grandson granddaughter grandaughter proxy hcp spouse partner "
    "rrt crt lpn msw sw pt/ot ot rehab icu ccu micu sicu csru or er ew ed osh va neice neices aunts uncles "
    "nieces nephews grandchildren grandkids kids children siblings relatives members member "
    # eponyms and jargon of ICU notes that look like names (general clinical vocabulary)
    "foley picc quinton hickman swan ganz groshong cordis pearl pearla perrl perrla fick muir passy levo cipro "
    "careview carevue trendelenberg trendelenburg afib aflutter mae nepro johnny johnnie brady tachy amber frank "
    "heme neuro resp gu gi id cv lasix heparin propofol fentanyl versed ativan haldol dilaudid morphine "
    "coumadin flagyl vanco zosyn levophed neo dopa dobutamine milrinone insulin".split()
)

_REL = (
    r"(?:wife|husband|son|sons|daughter|daughters|dtr|dtrs|sister|sisters|brother|brothers|mother|mom|"
    r"father|dad|niece|nephew|aunt|uncle|grand(?:son|daughter)|grandaughter|cousin|friend|fiance|fiancee|"
    r"girlfriend|boyfriend|significant other|partner|spouse|proxy|hcp|health care proxy|"
    r"contact person|sister-in-law|brother-in-law|daughter-in-law|son-in-law|stepson|stepdaughter)(?![A-Za-z])"
)
_NAME = r"([A-Za-z][A-Za-z'-]+)"
_INI = r"(?:([A-Za-z])(?:\.\s*|\s+))"

_CRED = r"(?i:rn|rrt|crt|np|md|lpn|msw|pa-c|pa|sw|bsn|cnp|scn)"
_PATTERNS: tuple[tuple[re.Pattern[str], str, bool, bool], ...] = (
    # (pattern, label, strict: every group must look like a name, strong: no tagger veto)
    (
        re.compile(r"\b(?:mr|mrs|miss)\.?\s+([A-Za-z][A-Za-z'-]+)(?:\s+([A-Z][a-z'-]+|[A-Z]{2,}\b))?", re.I),
        "PTName",
        True,
        False,
    ),
    (re.compile(r"\b(?:ms|Ms|MS)\.?\s+([A-Z][A-Za-z'-]+)(?:\s+([A-Z][a-z'-]+|[A-Z]{2,}\b))?"), "PTName", True, False),
    (re.compile(r"\b([A-Z][a-z'-]+|[A-Z]{3,})\s+(?:family|Family|FAMILY)\b"), "PTName", True, False),
    (re.compile(r"\b(?:dr|doctor)\.?\s+(?:([A-Za-z])\.?\s+)?([A-Za-z][A-Za-z'-]+)", re.I), "HCPName", False, False),
    (re.compile(r"\bdrs\.?\s+" + _NAME + r"(?:\s*(?:,|and|&)\s*" + _NAME + r")?", re.I), "HCPName", True, False),
    (re.compile(r"\b(?:dr|doctor)\.?\s+[A-Za-z][A-Za-z'-]+\s+(?:and|&)\s+" + _NAME, re.I), "HCPName", True, False),
    (re.compile(r"(?m)\b[A-Za-z]\.\s*([A-Za-z][A-Za-z'-]+),?\s+" + _CRED + r"\b"), "HCPName", False, True),
    # signatures: "Dan A. Forman-Lyons, RRT", "anita morris rn", "Bernard Foley CRT"
    (
        re.compile(
            r"(?m)(?:^|\||[.!?]\s)\s*"
            + _NAME
            + r"\s+"
            + _INI
            + r"?"
            + _NAME
            + r"(?:-[A-Za-z]+)?,?\s+"
            + _CRED
            + r"\b\W*$"
        ),
        "HCPName",
        True,
        True,
    ),
    (
        re.compile(r"(?m)(?:^|\|)\s*" + _INI + _NAME + r"(?:-[A-Za-z]+)?,?\s+" + _CRED + r"\b\W*$"),
        "HCPName",
        False,
        True,
    ),
    (re.compile(r"\b([A-Za-z])\.\s*([A-Z][a-z'-]+|[A-Z]{2,})[-,]?\s+" + _CRED + r"\b"), "HCPName", False, True),
    (
        re.compile(
            r"\b" + _NAME + r"\s+" + _NAME + r",?\s+" + _CRED + r"\s+(?:aware|notified|called|paged|in|into|here)\b"
        ),
        "HCPName",
        True,
        False,
    ),
    (
        re.compile(
            r"\b(?i:per|by|w/|with|called|paged|notified|->|informed|told)\s+([A-Za-z])\.\s*"
            r"([A-Z][a-z'-]+|[A-Z]{2,}|[a-z][a-z'-]+)\b"
        ),
        "HCPName",
        True,
        False,
    ),
    (re.compile(r"\b(?:per|by)\s+([a-z])\s+([a-z][a-z'-]{2,})\b"), "HCPName", True, False),
    (re.compile(r"(?m)\b([a-z])\.\s*([a-z][a-z'-]+)\s+(?:rrt|rn|crt|np|pa)\W*$"), "HCPName", True, True),
    (
        re.compile(
            r"\b(?:ho|intern|resident|fellow|attending|nurse|caseworker|case manager|case worker|"
            r"social worker|sw)\s+" + _NAME + r"(?:\s+" + _NAME + r")?",
            re.I,
        ),
        "HCPName",
        True,
        False,
    ),
    # a saint's name in mixed case is a hospital or town ("St Mary's", "St. Agnes"), not the ST segment
    (re.compile(r"\b(St)\.?[ \t]*([A-Z][a-z]+)\b(?!['’]s[ \t]+[Ww]ort)"), "Location", False, True),
    # relatives: "wife Mary", "son: John Smith", "daughter (Jane Doe)", "significant other charlie"
    (
        re.compile(r"\b" + _REL + r"\s*(?:[,:(-]|is|named|=)?\s*" + _NAME + r"(?:\s+" + _NAME + r")?", re.I),
        "RelativeProxyName",
        True,
        False,
    ),
    (
        re.compile(r"\b" + _NAME + r"\s+" + _NAME + r"?\s*\((?:pt'?s\s+)?" + _REL + r"\)", re.I),
        "RelativeProxyName",
        True,
        False,
    ),
    # "Lopie Certusi cell# 410-...", "Irene Czyzewicz- 204-943-1045", "CAROLE HAYES (135-442-9738)"
    (
        re.compile(
            r"\b([A-Z][a-z'-]+|[A-Z]{2,})\s+([A-Z][a-z'-]+|[A-Z]{2,})\s*[-,(:]?\s*(?:(?i:cell|home|work|phone|tel|ph)"
            r"\s*#?\s*:?\s*)?\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}"
        ),
        "RelativeProxyName",
        True,
        False,
    ),
    # "BEA TURA AWARE", "Bea Tura and Drs ..."
    (
        re.compile(
            r"\b([A-Z][a-z'-]+|[A-Z]{2,})\s+([A-Z][a-z'-]+|[A-Z]{2,})\s+(?i:aware|notified|paged|made aware|"
            r"and drs?\.?)\b"
        ),
        "HCPName",
        True,
        False,
    ),
    (re.compile(r"\b(?i:w/\s*md|md)\s+([A-Z][a-z'-]+|[A-Z]{3,})\b"), "HCPName", True, False),
    # a header field holding the patient's name alone: "Patient: SMITH, JOHN A", "Name: Jane Doe   DOB: …"
    (
        re.compile(
            r"(?im)^[ \t]*(?:patient(?:'s)?[ \t]+name|patient|pt[ \t]+name|name)[ \t]*:[ \t]*"
            r"(?-i:([A-Z][A-Za-z'-]+),?[ \t]+([A-Z][A-Za-z'-]+)(?:[ \t]+([A-Z])\b\.?)?)"
            r"[ \t]*(?=$|[ \t]{2,}|[,;|]|[ \t]*(?i:dob|d\.o\.b|mrn|age|sex|date)\b)"
        ),
        "PTName",
        False,
        True,
    ),
)

_LOC_KEY = (
    r"(?:hosp|hospital|medical cent(?:er|re)|med ctr|memorial|clinic|nursing home|health cent(?:er|re)|"
    r"heart cent(?:er|re)|manor|rehab(?:ilitation)? (?:center|hospital))"
)
_LOC_WORDS_STOP = NOT_NAMES | frozenset(
    "general outside local another our your same different nearby va mass state community acute long term "
    "chronic care rehab hospital osh city area county begin start started continue cont resume cardiac "
    "pulmonary cardiopulmonary inpatient outpatient physical acute subacute".split()
) - {"general"}
_LOC_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"((?:[A-Z][a-z'-]+\s+){1,3})(?:Rehab|Hospital|Hosp|Medical|Memorial|Center|Nursing|Manor)\b"),
    re.compile(r"((?:[A-Z][A-Z'-]+\s+){1,3})(?:REHAB|HOSPITAL|HOSP|MEMORIAL|MEDICAL CENTER|NURSING HOME|MANOR)\b"),
    re.compile(r"\b((?:St\.?|ST\.)\s*(?:[A-Z][a-z]+|[A-Z]{3,}|[A-Z]\.))"),
    re.compile(
        r"(?:\b(?:from|to|at|in|via)\s+|[@>]\s*)((?:[A-Za-z][A-Za-z.'-]*[\s-]+){1,3}?)" + _LOC_KEY + r"\b", re.I
    ),
    re.compile(
        r"\b(?:lives?|living|resides?|residing|home|house|moved|retired?|native|born|raised)\s+"
        r"(?:[a-z]+\s+){0,4}?(?:in|to|from)\s+([A-Z][A-Za-z'-]+(?:\s+[A-Z][A-Za-z'-]+)?)",
        re.I,
    ),
    re.compile(
        r"\b(?:in|from|to)\s+([A-Z][A-Za-z'-]+(?:\s+[A-Z][A-Za-z'-]+)?)\s*,\s*(?:ma|md|ny|nj|pa|va|"
        r"ct|nh|ri|me|vt|fl|ca|dc|de|nc|sc|ga|oh|tx)\b(?!\s*[A-Za-z])",
        re.I,
    ),
)


_PREP_PLACE = re.compile(
    r"\b(?:from|in|to|at|near|outside|lives|living)\s+([A-Za-z][a-z]+|[A-Z]+)(?:\s+([A-Za-z][a-z]+|[A-Z]+))?"
    r"(?:\s+([A-Za-z][a-z]+|[A-Z]+))?",
    re.I,
)
_TITLE_PAIR = re.compile(r"(?<=[a-z,;(][ \t])([A-Z][a-z]{2,})[ \t]+([A-Z][a-z]{2,})\b")  # not sentence/line start
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_FROM_IN = re.compile(r"\b(?:from|in|to|at)\s+([A-Z][a-z]{3,})\b(?!\s+(?:Hospital|Hosp|Medical|Center))")


def _looks_like_name(word: str, *, strict: bool) -> bool:
    w = word.lower().strip("'-")
    if len(w) < 2 or w in NOT_NAMES:
        return False
    if not strict:
        return True
    first, last = census_ranks()
    z = zipf(w)
    if w in first or w in last:
        return z < 5.0
    return z < 3.3


def find_context_names(text: str) -> Iterator[tuple[int, int, str, bool]]:
    """Yield ``(start, end, label, strong)`` for names and places found by context rules
    (``strong``: a signature-like context that the tagger may not veto)."""
    for pattern, label, strict, strong in _PATTERNS:
        for m in pattern.finditer(text):
            initials, names = [], []
            for g in range(1, (m.lastindex or 0) + 1):
                a, b = m.span(g)
                if b <= a:
                    continue
                if b - a == 1:  # an initial: kept only next to a name that passes
                    initials.append((a, b))
                elif _looks_like_name(text[a:b], strict=strict):
                    names.append((a, b))
                elif strict:  # "wife and niece": nothing after a word that fails
                    break
            if names:
                for a, b in names + initials:
                    yield a, b, label, strong
    head = text[:2000]
    n_upper = len(_UPPER.findall(head))
    upper_note = n_upper > 0.6 * max(1, n_upper + len(_LOWER.findall(head)))
    if not upper_note:  # "from Seattle", "in Lochearn": a capitalised rare word after from/in
        for m in _FROM_IN.finditer(text):
            lw = m.group(1).lower()
            if lw not in _LOC_WORDS_STOP and zipf(lw) < 2.8:
                yield m.start(1), m.end(1), "Location", False
    if not upper_note:  # "Radu Crosson": two capitalised words that look like a first and a last name
        first, last = census_ranks()
        for m in _TITLE_PAIR.finditer(text):
            w1, w2 = m.group(1).lower(), m.group(2).lower()
            if w1 in NOT_NAMES or w2 in NOT_NAMES:
                continue
            z1, z2 = zipf(w1), zipf(w2)
            if (
                ((w1 in first and z1 < 4.5) or z1 < 2.5)
                and ((w2 in last and z2 < 4.5) or z2 < 2.5)
                and min(z1, z2) < 3.5
            ):
                yield m.start(1), m.end(1), "Name?", False
                yield m.start(2), m.end(2), "Name?", False
    one, multi = us_places()
    for m in _PREP_PLACE.finditer(text):  # "in Rockville", "from Bel Air": a US place name after a preposition
        groups = [g for g in range(1, 4) if m.group(g)]
        for k in (3, 2, 1):
            if len(groups) < k:
                continue
            words = tuple(m.group(g).lower() for g in groups[:k])
            if words[0] in _LOC_WORDS_STOP or min(zipf(w) for w in words) >= 4.5:
                continue
            if (k == 1 and words[0] in one) or (k > 1 and words in multi):
                for g in groups[:k]:
                    yield m.start(g), m.end(g), "Location", False
                break
    for k, pattern in enumerate(_LOC_PATTERNS):
        for m in pattern.finditer(text):
            a0 = m.start(1)
            for w in re.finditer(r"[A-Za-z][A-Za-z'-]*", m.group(1)):
                lw = w.group().lower()
                if lw in _LOC_WORDS_STOP or (k > 3 and zipf(lw) >= 4.5) or (k < 2 and zipf(lw) >= 5.5):
                    continue
                yield a0 + w.start(), a0 + w.end(), "Location", False


_PLACE_GAP = re.compile(r"[ \t.'-]*")


def place_runs(text: str, spans: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Place words next to each other (only spaces, periods, apostrophes or hyphens between them,
    on one line) grouped into runs: the words of one place name ("Bel Air", "St. Mary's")."""
    runs: list[list[tuple[int, int]]] = []
    end = -1
    for a, b in sorted(set(spans)):
        if runs and (a < end or _PLACE_GAP.fullmatch(text[end:a])):
            runs[-1].append((a, b))
            end = max(end, b)
        else:
            runs.append([(a, b)])
            end = b
    return runs
