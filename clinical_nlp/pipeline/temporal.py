"""Temporal expressions: detection and ISO 8601 normalisation.

Each expression gets a ``type`` (DATE, TIME, DURATION, SET, RELATIVE), a
``value`` (ISO 8601 date, interval ``start/end``, duration ``P6M``, TIMEX3
references ``PAST_REF``/``PRESENT_REF``/``FUTURE_REF``, or a set ``R/P1D``),
a ``relation`` to the note's reference date (before/after/overlap), an
optional ``mod`` (LESS_THAN, MORE_THAN, AT_LEAST …) and ``anchor`` (the event
a relative expression refers to, e.g. "study start").

Example:
    >>> [t.value for t in find_temporal("seen 2 weeks ago", reference="2024-03-15")]
    ['2024-03-01']
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from clinical_nlp.pipeline._temporal_lexicon import (
    _MOD_NAMES,
    _MONTHS,
    _NUM_WORDS,
    _SET_WORDS,
    _UNITS,
    ANCHOR,
    DUR,
    MOD,
    MONTH,
    NUM,
    UNIT,
)


@dataclass(frozen=True, slots=True)
class TemporalExpression:
    start: int
    end: int
    text: str
    type: str
    value: str
    relation: str
    mod: str | None = None
    anchor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# ---------------------------------------------------------------- helpers
def _num(text: str | None) -> float | None:
    if text is None:
        return None
    t = text.lower()
    if t in _NUM_WORDS:
        return _NUM_WORDS[t]
    try:
        return float(t)
    except ValueError:
        return None


def _unit(text: str) -> str:
    t = text.lower().rstrip("s") if text.lower() not in ("mos", "hrs", "yrs", "wks", "mins") else text.lower()[:-1]
    return _UNITS.get(t, _UNITS.get(t.rstrip("s"), "D"))


def duration_iso(num: float | None, unit: str) -> str:
    """``(6, "M") -> "P6M"``; time units become ``PT6H``; unknown counts ``PXM``."""
    n = "X" if num is None else (str(int(num)) if float(num).is_integer() else str(num))
    return f"PT{n}{unit[1:]}" if unit.startswith("T") else f"P{n}{unit}"


def shift(ref: dt.date, num: float, unit: str, sign: int) -> dt.date | dt.datetime:
    n = int(num) * sign
    if unit == "D":
        return ref + dt.timedelta(days=n)
    if unit == "W":
        return ref + dt.timedelta(weeks=n)
    if unit in ("M", "Y"):
        months = n * (12 if unit == "Y" else 1)
        y, m = divmod(ref.month - 1 + months, 12)
        year, month = ref.year + y, m + 1
        day = min(ref.day, calendar.monthrange(year, month)[1])
        return ref.replace(year=year, month=month, day=day)
    return ref  # hours/minutes: same calendar day at date granularity


def _ref_date(reference: str | dt.date | None) -> dt.date | None:
    if reference is None or reference == "":
        return None
    if isinstance(reference, dt.datetime):
        return reference.date()
    if isinstance(reference, dt.date):
        return reference
    try:
        return dt.date.fromisoformat(str(reference)[:10])
    except ValueError:
        return None


def _mod(m: re.Match[str]) -> str | None:
    raw = m.groupdict().get("mod")
    if not raw:
        return None
    return _MOD_NAMES.get(re.sub(r"\s+", " ", raw.strip().lower()))


def _anchor(m: re.Match[str]) -> str | None:
    a = m.groupdict().get("anchor")
    return re.sub(r"\s+", " ", a.strip()) if a else None


# ------------------------------------------------------------ normalisers
Rule = tuple[str, re.Pattern[str], Callable[[re.Match[str], dt.date | None], tuple[str, str, str]]]


def _n_ago(m, ref):
    num, unit = _num(m["num"]), _unit(m["unit"])
    if ref is None or num is None or unit.startswith("T"):
        return "DATE", "PAST_REF", "before"
    return "DATE", shift(ref, num, unit, -1).isoformat(), "before"


def _within_last(m, ref):
    num, unit = _num(m["num"]), _unit(m["unit"])
    if _anchor(m) or ref is None or num is None or unit.startswith("T"):
        return "RELATIVE", duration_iso(num, unit), "before"
    return "RELATIVE", f"{shift(ref, num, unit, -1).isoformat()}/{ref.isoformat()}", "before"


def _prior_to(m, ref):
    num, unit = _num(m["num"]), _unit(m["unit"])
    rel = "after" if m["dir"].lower().split()[0] in ("after", "following", "post") else "before"
    return "RELATIVE", duration_iso(num, unit), rel


def _in_next(m, ref):
    num, unit = _num(m["num"]), _unit(m["unit"])
    if ref is None or num is None or unit.startswith("T"):
        return "RELATIVE", duration_iso(num, unit), "after"
    return "RELATIVE", f"{ref.isoformat()}/{shift(ref, num, unit, 1).isoformat()}", "after"


def _for_dur(m, ref):
    return "DURATION", duration_iso(_num(m["num"]), _unit(m["unit"])), "overlap"


def _last_unit(m, ref):
    unit = _unit(m["unit"])
    if ref is None:
        return "DATE", "PAST_REF", "before"
    if unit == "Y":
        return "DATE", str(ref.year - 1), "before"
    if unit == "M":
        d = shift(ref, 1, "M", -1)
        return "DATE", f"{d.year:04d}-{d.month:02d}", "before"
    if unit == "W":
        y, w, _ = (ref - dt.timedelta(weeks=1)).isocalendar()
        return "DATE", f"{y:04d}-W{w:02d}", "before"
    return "DATE", (ref - dt.timedelta(days=1)).isoformat(), "before"


def _past_unit(m, ref):
    unit = _unit(m["unit"])
    if ref is None:
        return "RELATIVE", duration_iso(1, unit), "before"
    return "RELATIVE", f"{shift(ref, 1, unit, -1).isoformat()}/{ref.isoformat()}", "before"


def _iso_date(m, ref):
    return "DATE", f"{int(m['y']):04d}-{int(m['m']):02d}-{int(m['d']):02d}", "before"


def _us_date(m, ref):
    y = int(m["y"])
    y = y + (2000 if y < 50 else 1900) if y < 100 else y
    return "DATE", f"{y:04d}-{int(m['m']):02d}-{int(m['d']):02d}", "before"


def _month_year(m, ref):
    mon = _MONTHS[
        m["mon"].lower().rstrip(".")[:3]
        if m["mon"].lower().rstrip(".") not in _MONTHS
        else m["mon"].lower().rstrip(".")
    ]
    if m.groupdict().get("d"):
        return "DATE", f"{int(m['y']):04d}-{mon:02d}-{int(m['d']):02d}", "before"
    return "DATE", f"{int(m['y']):04d}-{mon:02d}", "before"


def _between_years(m, ref):
    a, b = (
        _month_year(re.match(rf"(?P<mon>{MONTH})\s+(?P<y>\d{{4}})", m["a"], re.IGNORECASE), ref)[1],
        _month_year(re.match(rf"(?P<mon>{MONTH})\s+(?P<y>\d{{4}})", m["b"], re.IGNORECASE), ref)[1],
    )
    return "DATE", f"{a}/{b}", "before"


def _since(m, ref):
    inner = m["what"]
    for _typ, rx, fn in _DATE_RULES:
        mm = rx.fullmatch(inner)
        if mm:
            value = fn(mm, ref)[1]
            end = ref.isoformat() if ref else ""
            return "RELATIVE", f"{value}/{end}" if end else value, "after"
    return "RELATIVE", inner, "after"


def _year(m, ref):
    return "DATE", m["y"], "before"


def _day_word(m, ref):
    w = m[0].lower()
    off = {"today": 0, "yesterday": -1, "tomorrow": 1, "tonight": 0, "this morning": 0}.get(w, 0)
    if ref is None:
        return (
            "DATE",
            "PRESENT_REF" if off == 0 else ("PAST_REF" if off < 0 else "FUTURE_REF"),
            "overlap" if off == 0 else ("before" if off < 0 else "after"),
        )
    return (
        "DATE",
        (ref + dt.timedelta(days=off)).isoformat(),
        "overlap" if off == 0 else ("before" if off < 0 else "after"),
    )


def _time(m, ref):
    h, mi = int(m["h"]), int(m["mi"] or 0)
    ap = (m["ap"] or "").lower().replace(".", "")
    if ap.startswith("p") and h < 12:
        h += 12
    if ap.startswith("a") and h == 12:
        h = 0
    t = f"T{h:02d}:{mi:02d}"
    return "TIME", (ref.isoformat() + t) if ref else t, "overlap"


def _set_word(m, ref):
    return "SET", _SET_WORDS[re.sub(r"\s+", " ", m[0].lower())], "overlap"


def _every(m, ref):
    num = _num(m["num"]) if m["num"] else 1
    return "SET", "R/" + duration_iso(num, _unit(m["unit"])), "overlap"


def _times_per(m, ref):
    return "SET", f"R{int(_num(m['num']) or 1)}/" + duration_iso(1, _unit(m["unit"])), "overlap"


def _qh(m, ref):
    return "SET", f"R/PT{int(m['num'])}H", "overlap"


def _const(typ: str, value: str, rel: str):
    return lambda m, ref: (typ, value, rel)


def _c(p: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])(?:" + p + r")(?![\w])", re.IGNORECASE)


_DATE_RULES: list[Rule] = [
    ("DATE", _c(r"(?P<y>(?:19|20)\d\d)-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)"), _iso_date),
    ("DATE", _c(r"(?P<m>[01]?\d)/(?P<d>[0-3]?\d)/(?P<y>\d{4}|\d\d)"), _us_date),
    ("DATE", _c(rf"(?P<mon>{MONTH})\s+(?:(?P<d>[0-3]?\d)(?:st|nd|rd|th)?,?\s+)?(?P<y>(?:19|20)\d\d)"), _month_year),
    ("DATE", _c(r"(?P<y>(?:19|20)\d\d)"), _year),
]

_PAST = r"(?:last|past|previous|prior|preceding)"
#: single words (or "at present") that say a finding is current: found, but not suggested as spans
_PRESENT_CUE = r"current(?:ly)?|concomitant|ongoing|active|undergoing|presently|at\s+present|persistently|sustained"
_PRESENT_CUE_RX = re.compile(_PRESENT_CUE, re.IGNORECASE)
RULES: list[Rule] = _DATE_RULES + [
    ("DATE", _c(rf"(?P<a>{MONTH}\s+\d{{4}})\s+(?:and|to|-)\s+(?P<b>{MONTH}\s+\d{{4}})"), _between_years),
    ("DATE", _c(rf"between\s+(?P<a>{MONTH}\s+\d{{4}})\s+and\s+(?P<b>{MONTH}\s+\d{{4}})"), _between_years),
    ("RELATIVE", _c(r"since\s+(?P<what>(?:" + MONTH + r"\s+)?(?:19|20)\d\d|\d{1,2}/\d{1,2}/\d{2,4})"), _since),
    ("DATE", _c(rf"{MOD}{DUR}\s+ago"), _n_ago),
    (
        "RELATIVE",
        _c(
            rf"(?:with)?in\s+(?:the\s+)?(?:{_PAST}\s+)?{MOD}{DUR}(?:\s+(?:(?:prior\s+to|before|of|preceding)\s+{ANCHOR}|\s*prior))?"
        ),
        _within_last,
    ),
    (
        "RELATIVE",
        _c(
            rf"(?:in|during|over|for)\s+(?:at\s+least\s+)?(?:the\s+)?{_PAST}\s+{MOD}{DUR}(?:\s+(?:prior\s+to|before|preceding)\s+{ANCHOR})?"
        ),
        _within_last,
    ),
    ("RELATIVE", _c(rf"(?:the\s+)?{_PAST}\s+{DUR}"), _within_last),
    (
        "RELATIVE",
        _c(rf"{MOD}{DUR}\s+(?P<dir>prior(?:\s+to)?|before|after|following|post|preceding)(?:\s+{ANCHOR})?"),
        _prior_to,
    ),
    ("RELATIVE", _c(rf"(?:with)?in\s+the\s+next\s+{DUR}"), _in_next),
    ("DURATION", _c(rf"(?:for\s+)?{MOD}(?:the\s+(?:last|past)\s+)?{DUR}(?:\s+(?:duration|period))?"), _for_dur),
    ("DATE", _c(r"last\s+(?P<unit>year|month|week)"), _last_unit),
    ("RELATIVE", _c(r"(?:the\s+)?past\s+(?P<unit>year|month|week|day)"), _past_unit),
    (
        "RELATIVE",
        _c(rf"(?:in|during)\s+the\s+(?P<unit>year|month|week|day)\s+(?:prior\s+to|before|preceding)\s+{ANCHOR}"),
        lambda m, ref: ("RELATIVE", duration_iso(1, _unit(m["unit"])), "before"),
    ),
    (
        "RELATIVE",
        _c(r"(?:in|during|within|over)\s+the\s+(?:last|past|previous|prior)\s+(?P<unit>year|month|week|day)"),
        _past_unit,
    ),
    ("DATE", _c(r"today|yesterday|tomorrow|tonight|this\s+morning"), _day_word),
    ("TIME", _c(r"(?P<h>[01]?\d|2[0-3])(?::(?P<mi>[0-5]\d))\s*(?P<ap>[ap]\.?m\.?)?"), _time),
    ("TIME", _c(r"(?P<h>1[0-2]|[1-9])(?P<mi>)\s*(?P<ap>[ap]\.?m\.?)"), _time),
    (
        "SET",
        _c("|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_SET_WORDS, key=len, reverse=True))),
        _set_word,
    ),
    ("SET", _c(rf"(?:every|each|per|a)\s+(?:(?P<num>{NUM})\s+)?(?P<unit>{UNIT})"), _every),
    (
        "SET",
        _c(rf"(?P<num>{NUM}|once|twice)\s+(?:times\s+)?(?:a|per|each)\s+(?P<unit>{UNIT})"),
        lambda m, ref: (
            "SET",
            f"R{ {'once': 1, 'twice': 2}.get(m['num'].lower()) or int(_num(m['num']) or 1) }/"
            + duration_iso(1, _unit(m["unit"])),
            "overlap",
        ),
    ),
    ("SET", _c(r"q\s*(?P<num>\d{1,2})\s*h(?:rs?|ours?)?"), _qh),
    # relative expressions anchored on a study event
    ("RELATIVE", _c(rf"(?:prior\s+to|before)\s+{ANCHOR}"), _const("RELATIVE", "PAST_REF", "before")),
    ("RELATIVE", _c(rf"(?:after|following)\s+{ANCHOR}"), _const("RELATIVE", "FUTURE_REF", "after")),
    (
        "RELATIVE",
        _c(rf"(?:at|during|throughout)\s+(?:the\s+)?(?:time\s+of\s+)?{ANCHOR}"),
        _const("RELATIVE", "PRESENT_REF", "overlap"),
    ),
    (
        "RELATIVE",
        _c(r"at\s+(?:screening|baseline)(?:\s+visit)?|baseline"),
        _const("RELATIVE", "PRESENT_REF", "overlap"),
    ),
    (
        "RELATIVE",
        _c(r"(?:any\s+time\s+)?during\s+the\s+(?:current|present)\s+[a-z ]{0,40}?episode"),
        _const("RELATIVE", "PRESENT_REF", "overlap"),
    ),
    # single-word temporal cues (Chia annotates them as Temporal)
    (
        "RELATIVE",
        _c(
            r"(?:past\s+)?(?:medical\s+)?history|previous(?:ly)?|prior|past|pre-existing|preexisting|antecedent|former(?:ly)?|"
            r"recent(?:ly)?|pre-?operative|pre-?treatment"
        ),
        _const("RELATIVE", "PAST_REF", "before"),
    ),
    ("RELATIVE", _c(_PRESENT_CUE), _const("RELATIVE", "PRESENT_REF", "overlap")),
    ("RELATIVE", _c(r"future|upcoming|post-?operative"), _const("RELATIVE", "FUTURE_REF", "after")),
]


_AGE_AFTER = re.compile(
    r"\s*(?:of\s+age|old|or\s+(?:older|above|more|over|younger|less)|and\s+(?:older|above|over))", re.IGNORECASE
)
_AGE_BEFORE = re.compile(
    r"(?:\bages?d?|\bage\s+(?:of|between|from)|\bbetween|\bfrom)\W*(?:[\w.]+\W+){0,3}$", re.IGNORECASE
)


def _is_age(text: str, m: re.Match[str]) -> bool:
    """A bare duration in years that is an age ("aged 18 years or older", "≥ 18 years")."""
    if m.groupdict().get("unit") is None or _unit(m["unit"]) != "Y" or m[0].lower().startswith("for"):
        return False
    num = _num(m["num"]) or 0
    return bool(
        _AGE_AFTER.match(text, m.end()) or _AGE_BEFORE.search(text[max(0, m.start() - 30) : m.start()]) or num >= 12
    )


def is_present_cue(expr: TemporalExpression) -> bool:
    """A one-word "now" cue ("current", "ongoing", "active"): the pipeline does not suggest it as a span.

    Chosen on the Chia dev tune trials (``splits/chia-dev-trials.json``): suggested, these cues cost
    more edits than they save (Temporal edits 187 with them, 167 without, 177 from scratch).
    """
    return expr.value == "PRESENT_REF" and _PRESENT_CUE_RX.fullmatch(expr.text) is not None


def find_temporal(text: str, reference: str | dt.date | None = None) -> list[TemporalExpression]:
    """All temporal expressions in ``text`` (longest non-overlapping matches, in order).

    ``reference`` is the note date (ISO string or ``date``); relative
    expressions are resolved against it when given.
    """
    ref = _ref_date(reference)
    cands: list[tuple[int, int, int, re.Match[str], Callable]] = []
    for prio, (_, rx, fn) in enumerate(RULES):
        for m in rx.finditer(text):
            if m.end() > m.start():
                cands.append((m.start(), m.end(), prio, m, fn))
    cands.sort(key=lambda c: (-(c[1] - c[0]), c[2], c[0]))
    taken: list[tuple[int, int]] = []
    out: list[TemporalExpression] = []
    for s, e, _prio, m, fn in cands:
        if any(s < te and ts < e for ts, te in taken):
            continue
        typ, value, rel = fn(m, ref)
        if typ == "DURATION" and _is_age(text, m):
            continue
        taken.append((s, e))
        out.append(TemporalExpression(s, e, text[s:e], typ, value, rel, _mod(m), _anchor(m)))
    out.sort(key=lambda t: t.start)
    return out
