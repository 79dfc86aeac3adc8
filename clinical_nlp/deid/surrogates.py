"""Surrogates: per-patient consistent stand-ins for each kind of PHI, and the per-patient date shift."""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re

from clinical_nlp.deid.lexicons import CITIES, FIRST_NAMES, HOSPITALS, LAST_NAMES
from clinical_nlp.deid.month_dates import shift_month_name_date
from clinical_nlp.textnorm import plain_text

NAME_LABELS = {"PTName", "PTNameInitial", "RelativeProxyName", "HCPName"}

_DATE_FORMATS = [
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$"), "mdY"),
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})$"), "mdy"),
    (re.compile(r"^(\d{1,2})/(\d{1,2})$"), "md"),
    (re.compile(r"^(\d{1,2})/(\d{4})$"), "mY"),
    (re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"), "Y/m/d"),
    (re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$"), "m.d.Y"),
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"), "Ymd"),
    (re.compile(r"^(\d{1,2})-(\d{1,2})-(\d{4})$"), "m-d-Y"),
    (re.compile(r"^(\d{1,2})-(\d{1,2})-(\d{2})$"), "m-d-y"),
]


class SurrogateMaker:
    """Per-patient consistent surrogates keyed by an HMAC secret (same key → same surrogates)."""

    def __init__(self, key: bytes):
        self.key = key

    def _h(self, *parts: str) -> int:
        msg = "\x1f".join(parts).encode("utf-8")
        return int.from_bytes(hmac.new(self.key, msg, hashlib.sha256).digest()[:8], "big")

    def pseudonym(self, kind: str, value: str) -> str:
        """``<kind>-<12 hex>``: a keyed, stable stand-in for an identifier (patient id, file name, reference)."""
        return f"{kind}-{self._h('pseudonym', kind, value):016x}"[: len(kind) + 13]

    def date_shift(self, patient: str) -> int:
        """Days to shift this patient's dates by (-365..-30; intervals are preserved)."""
        return -30 - self._h("shift", patient) % 336

    def surrogate(self, patient: str, label: str, original: str) -> str:
        original = plain_text(original)  # "3\u20114\u20112020" is a date of the form 3-4-2020
        norm = original.lower().strip()
        if label in NAME_LABELS:
            pool = LAST_NAMES if self._h("kind", patient, norm) % 2 else FIRST_NAMES
            if label == "PTNameInitial":
                return "".join(
                    c
                    for c in FIRST_NAMES[self._h("i", patient, norm) % len(FIRST_NAMES)][:1].upper()
                    + LAST_NAMES[self._h("j", patient, norm) % len(LAST_NAMES)][:1].upper()
                )
            value = pool[self._h("name", patient, norm) % len(pool)]  # same name, same surrogate whatever its role
            return _match_case(value, original)
        if label == "Location" and original[:1].isdigit():  # a ZIP code, or a street address
            h = self._h(label, patient, norm)
            if not re.search(r"[A-Za-z]", original):
                return _digits_like(original, h)
            number = _digits_like(original.split()[0], h)
            return f"{number} {_match_case(LAST_NAMES[h % len(LAST_NAMES)], original)} Street"
        if label == "Location":
            pool = HOSPITALS if any(w in norm for w in ("hosp", "center", "clinic", "medical")) else CITIES
            value = pool[self._h(label, patient, norm) % len(pool)]
            return _match_case(_with_facility_words_of(value, original) if pool is HOSPITALS else value, original)
        if label == "Date":
            return self.shift_date(patient, original)
        if label == "Age":
            return "90+"
        if label == "ID":  # letters too: "7ABC123" (a plate) must not keep "7ABC"
            return _digits_like(
                _letters_like(original, self._h("letters", patient, norm)), self._h(label, patient, norm)
            )
        if label in {"Phone", "Other"}:
            return _digits_like(original, self._h(label, patient, norm))
        if label == "DateYear":
            return original  # a year alone is not PHI under Safe Harbor
        if label == "Email":
            return f"user{self._h(label, patient, norm) % 10000}@example.org"
        if label == "URL":
            return "https://example.org/"
        if label == "IP":
            h = self._h(label, patient, norm)
            return f"192.0.2.{h % 254 + 1}"
        return f"[{label}]"

    def shift_date(self, patient: str, original: str) -> str:
        shift = _dt.timedelta(days=self.date_shift(patient))
        s = original.strip()
        for pattern, fmt in _DATE_FORMATS:
            m = pattern.match(s)
            if not m:
                continue
            try:
                if fmt == "mdY":
                    d = _dt.date(int(m[3]), int(m[1]), int(m[2])) + shift
                    return f"{d.month}/{d.day}/{d.year}"
                if fmt == "mdy":
                    yy = int(m[3])
                    d = _dt.date(1900 + yy if yy > 30 else 2000 + yy, int(m[1]), int(m[2])) + shift
                    return f"{d.month}/{d.day}/{d.year % 100:02d}"
                if fmt == "Y/m/d":
                    d = _dt.date(int(m[1]), int(m[2]), int(m[3])) + shift
                    return f"{d.year}/{d.month:02d}/{d.day:02d}"
                if fmt in ("m-d-Y", "m-d-y"):  # 3-4-2020, 03-04-20: the rule's month-day-year
                    year = int(m[3]) if fmt == "m-d-Y" else (1900 + int(m[3]) if int(m[3]) > 30 else 2000 + int(m[3]))
                    d = _dt.date(year, int(m[1]), int(m[2])) + shift
                    return f"{d.month}-{d.day}-{d.year}" if fmt == "m-d-Y" else f"{d.month}-{d.day}-{d.year % 100:02d}"
                if fmt == "m.d.Y":
                    d = _dt.date(int(m[3]), int(m[1]), int(m[2])) + shift
                    return f"{d.month:02d}.{d.day:02d}.{d.year}"
                if fmt == "mY":  # month/year: the month of its 15th, shifted
                    d = _dt.date(int(m[2]), int(m[1]), 15) + shift
                    return f"{d.month}/{d.year}"
                if fmt == "md":
                    d = _dt.date(2000, int(m[1]), int(m[2])) + shift  # leap year keeps 2/29
                    return f"{d.month}/{d.day}"
                d = _dt.date(int(m[1]), int(m[2]), int(m[3])) + shift
                return d.isoformat()
            except ValueError:
                break
        return shift_month_name_date(s, self.date_shift(patient)) or "[DATE]"


#: The words that end a facility's name ("Medical Center"), kept from the original span, not the surrogate's.
_FACILITY_WORDS = frozenset("hospital hosp medical center centre clinic memorial general regional".split())


def _facility_tail(words: list[str]) -> int:
    """How many of ``words``' last words are facility words."""
    n = 0
    while n < len(words) and words[-1 - n].lower().strip(".,") in _FACILITY_WORDS:
        n += 1
    return n


def _with_facility_words_of(value: str, original: str) -> str:
    """The surrogate's name with the original's own facility words: the span "ABC Medical" (its "Center"
    outside the span, in the text) becomes "St. Anne Medical", not "St. Anne Medical Center Center".

    >>> _with_facility_words_of("St. Anne Medical Center", "ABC Medical")
    'St. Anne Medical'
    >>> _with_facility_words_of("Hillcrest Hospital", "Mass General Hospital")
    'Hillcrest General Hospital'
    """
    words, kept = value.split(), original.split()
    base = words[: len(words) - _facility_tail(words)] or words[:1]
    tail = kept[len(kept) - _facility_tail(kept) :] if _facility_tail(kept) < len(kept) else []
    return " ".join(base + tail) if tail else value


def _match_case(value: str, original: str) -> str:
    if original.isupper():
        return value.upper()
    if original.islower():
        return value.lower()
    return value.title() if value.islower() else value


def _letters_like(original: str, h: int) -> str:
    """Each ASCII letter replaced by a keyed letter of the same case; everything else kept."""
    out = []
    for c in original:
        if c.isascii() and c.isalpha():
            letter = chr(ord("a") + h % 26)
            out.append(letter.upper() if c.isupper() else letter)
            h = h // 26 or 104729
        else:
            out.append(c)
    return "".join(out)


def _digits_like(original: str, h: int) -> str:
    out = []
    for c in original:
        if c.isdigit():
            out.append(str(h % 10))
            h //= 10
            if h == 0:
                h = 7919
        else:
            out.append(c)
    return "".join(out)
