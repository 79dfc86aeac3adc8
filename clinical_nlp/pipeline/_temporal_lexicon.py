"""The vocabulary of temporal expressions: number words, units, months, modifiers, frequency words,
and the regular-expression pieces built from them (used by :mod:`clinical_nlp.pipeline.temporal`)."""

from __future__ import annotations

import calendar

_NUM_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "eighteen": 18,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
    "several": None,
    "few": None,
}
_UNITS = {
    "minute": "TM",
    "min": "TM",
    "hour": "TH",
    "hr": "TH",
    "h": "TH",
    "day": "D",
    "week": "W",
    "wk": "W",
    "month": "M",
    "mo": "M",
    "year": "Y",
    "yr": "Y",
    "y": "Y",
}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})

NUM = r"(?:\d+(?:\.\d+)?|" + "|".join(sorted(_NUM_WORDS, key=len, reverse=True)) + r")"
UNIT = r"(?:minutes?|mins?|hours?|hrs?|days?|weeks?|wks?|months?|mos?|years?|yrs?)"
DUR = rf"(?P<num>{NUM})(?:\s*-\s*|\s+)(?P<unit>{UNIT})"
MOD = (
    r"(?P<mod>(?:at\s+least|a\s+minimum\s+of|minimum\s+of|more\s+than|greater\s+than|less\s+than|at\s+most|"
    r"up\s+to|over|under|>=|<=|≥|≤|>|<)\s*)?"
)
ANCHOR = (
    r"(?P<anchor>(?:the\s+)?(?:(?:start|beginning)\s+of\s+(?:the\s+)?(?:study|treatment|trial)|study\s+(?:start|entry|initiation|enrollment|drug(?:\s+administration)?|treatment)|"
    r"screening(?:\s+visit)?|baseline|enrollment|enrolment|randomi[sz]ation|inclusion|registration|surgery|"
    r"admission|the\s+study|study|treatment|first\s+dose|day\s+1|cycle\s+1|visit\s+1|consent|signing\s+(?:the\s+)?"
    r"informed\s+consent|diagnosis|(?:the\s+)?first\s+scheduled\s+study\s+treatment))"
)
MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_MOD_NAMES = {
    "at least": "AT_LEAST",
    "a minimum of": "AT_LEAST",
    "minimum of": "AT_LEAST",
    ">=": "AT_LEAST",
    "≥": "AT_LEAST",
    "more than": "MORE_THAN",
    "greater than": "MORE_THAN",
    "over": "MORE_THAN",
    ">": "MORE_THAN",
    "less than": "LESS_THAN",
    "under": "LESS_THAN",
    "<": "LESS_THAN",
    "at most": "AT_MOST",
    "up to": "AT_MOST",
    "<=": "AT_MOST",
    "≤": "AT_MOST",
}

_SET_WORDS = {
    "daily": "R/P1D",
    "once daily": "R/P1D",
    "once a day": "R/P1D",
    "qd": "R/P1D",
    "od": "R/P1D",
    "bid": "R2/P1D",
    "b.i.d.": "R2/P1D",
    "twice daily": "R2/P1D",
    "twice a day": "R2/P1D",
    "tid": "R3/P1D",
    "t.i.d.": "R3/P1D",
    "three times daily": "R3/P1D",
    "three times a day": "R3/P1D",
    "qid": "R4/P1D",
    "q.i.d.": "R4/P1D",
    "four times daily": "R4/P1D",
    "four times a day": "R4/P1D",
    "weekly": "R/P1W",
    "once a week": "R/P1W",
    "once weekly": "R/P1W",
    "monthly": "R/P1M",
    "once a month": "R/P1M",
    "yearly": "R/P1Y",
    "annually": "R/P1Y",
    "nightly": "R/P1D",
    "hourly": "R/PT1H",
    "qhs": "R/P1D",
    "every day": "R/P1D",
    "every other day": "R/P2D",
    "twice weekly": "R2/P1W",
    "twice a week": "R2/P1W",
}
