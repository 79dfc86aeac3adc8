"""Pattern rules for PHI with a regular form (dates, phones, e-mail, URLs, IPs, IDs, ages > 89, US addresses)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from clinical_nlp.deid.lexicons import MONTHS

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)

#: US state codes, less those that are also words or clinical abbreviations in upper-case notes
#: ("IN", "OR", "ME", "OK", "HI", "OH"; "CO" cardiac output, "PA" pulmonary artery, "LA", "MI", "DE", "ID", "AL")
_STATE = (
    r"(?:AK|AZ|AR|CA|CT|DC|FL|GA|IL|IA|KS|KY|MD|MA|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|"
    r"NC|ND|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR)"
)
#: street suffixes, title or upper case; left out are those with a common clinical reading in a
#: nursing note ("lines in PLACE", "resp DRIVE", "on his WAY", "ST segment", "CT", "LN" lymph node)
_FULL_SUFFIXES = "street avenue road boulevard lane terrace parkway highway"
_STREET_SUFFIX = (
    "(?:"
    + "|".join(
        [w.title() for w in _FULL_SUFFIXES.split()]
        + [w.upper() for w in _FULL_SUFFIXES.split()]
        + "St Ave Rd Blvd Ln Ter Pkwy Hwy AVE RD BLVD".split()
    )
    + ")"
)
#: a US street address: number, one to three capitalised words, a street suffix, an optional unit
_STREET = (
    rf"\b\d{{1,6}}[ \t]+(?:[NSEW]\.?[ \t]+)?(?:[A-Z][A-Za-z'-]+[ \t]+){{1,3}}{_STREET_SUFFIX}\b\.?"
    r"(?:,?\s+(?i:apt|apartment|suite|ste|unit|#)\.?\s*#?[A-Za-z]?\d+[A-Za-z]?\b)?"
)
_CITY_WORDS = r"[A-Z][A-Za-z'-]+(?:[ \t][A-Z][A-Za-z'-]+){0,2}"
_CITY_STATE_ZIP = rf"\b({_CITY_WORDS}),?[ \t]+{_STATE}[ \t]+(\d{{5}}(?:-\d{{4}})?)\b(?![ \t]*(?i:units?|u\b|cc|ml|mg))"

#: (label, compiled pattern, group holding the PHI) in priority order.
RULES: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("Email", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), 0),
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>\"]+", re.I), 0),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), 0),
    ("Phone", re.compile(r"(?<![\w/])(?:\(?\d{3}\)?[\s./-]{1,2}\d{3}|[2-9]\d{2})[\s.-]{1,2}\d{4}\b"), 0),
    ("Phone", re.compile(r"\b\d{3}/\d{3}/\d{4}\b"), 0),
    ("Phone", re.compile(r"\(\d{3}\)\d{3}[\s.-]?\d{4}\b"), 0),  # "(617)555-0199": no space after the area code
    ("Phone", re.compile(r"(?<![\w/.-])[2-9]\d{5}-\d{4}\b"), 0),  # area code run into the exchange: "202232-4455"
    (
        "Phone",
        re.compile(r"(?:pager|beeper|pg|page|cell|home|work|tel|phone|fax|ext)\s*[#:.]*\s*(#?\d{4,6})\b", re.I),
        1,
    ),
    ("Date", re.compile(r"(?<![\d/.])(?:0?[1-9]|1[0-2])/(?:3[2-9]|[4-9]\d)(?![\d/%])"), 0),
    ("Date", re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"), 0),
    ("Date", re.compile(r"\b(?:19|20)\d{2}/(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])\b"), 0),  # 2020/01/05
    ("Date", re.compile(r"(?<![\d.])(?:0?[1-9]|1[0-2])\.(?:0?[1-9]|[12]\d|3[01])\.(?:19|20)\d{2}(?![\d.])"), 0),
    ("Date", re.compile(r"(?<![\d/.])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])(?:/(?:\d{4}|\d{2}))?(?![\d/])"), 0),
    ("Date", re.compile(r"(?<![\d.])(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01])-(?:\d{4}|\d{2})(?![\d-])"), 0),
    ("Date", re.compile(rf"\b{_MONTH}\s+(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b", re.I), 0),
    (
        "Date",
        re.compile(
            rf"\b(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+(?:\d{{4}}|'?\d{{2}}))?\b", re.I
        ),
        0,
    ),
    ("Date", re.compile(r"(?<![\d/.])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])\.(?:\d{2}|\d{4})(?![\d/.])"), 0),
    ("Date", re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?(?:19|20)\d{{2}}\b", re.I), 0),
    (  # 03-Apr-2021, 3/APR/21, Apr-2021: the hyphenated forms of EHR exports
        "Date",
        re.compile(
            rf"(?<![\w-])(?:(?:0?[1-9]|[12]\d|3[01])[-/])?{_MONTH}[-/](?:(?:19|20)\d{{2}}|\d{{2}})(?![\w-])", re.I
        ),
        0,
    ),
    ("Date", re.compile(r"(?<![\d/.])(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\d/])"), 0),  # month/year: 2/2001
    (
        "Date",
        re.compile(
            r"\b(?:the|on|of)\s+((?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th))\b"
            r"(?=\s*(?:[.,;:)!?\"]|$|\s(?:of|at|in|and|to)\b))",
            re.I,
        ),
        1,
    ),
    ("DateYear", re.compile(r"(?<![\w/'])(?:19[5-9]\d|20[0-4]\d)(?![\w/])"), 0),
    ("DateYear", re.compile(r"(?<![\w/])'\d{2}\b|\b\d{2}'(?=[.,;)])"), 0),
    (  # a year of birth, however old: "born in 1932", "DOB: 1928", "b. 1941"
        "DateYear",
        re.compile(
            r"(?:\bborn|\bbirth|\bdob|\bd\.o\.b\.?|\byob|\bb\.)\s*(?:in|on|:)?\s*((?:18|19|20)\d{2})(?![\w/])", re.I
        ),
        1,
    ),
    (
        "Age",
        re.compile(r"\b(9\d|1[01]\d)(?=\s*-?\s*(?:y/?o\b|yo[fm]?\b|y\.\s?o\b|yrs?\b|yr\.|years?\b|year-old))", re.I),
        1,
    ),
    ("Age", re.compile(r"\b(?:age|aged)\s*:?\s*(9\d|1[01]\d)\b", re.I), 1),
    (
        "ID",
        re.compile(
            r"(?:mrn|mr#|medical record|acct|account|ssn|licen[cs]e|ref|unit no|npi|dea|policy|member|subscriber|"
            r"(?:patient|insurance|member|medicare|medicaid)\s+id|#)\s*(?:number|no\.?|#|id)?\s*[:#]?\s*"
            r"([A-Z]{0,3}-?\d{5,}[A-Z\d-]*)\b",
            re.I,
        ),
        1,
    ),
    ("ID", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), 0),
    (  # device serial numbers, vehicle and plate numbers (HIPAA identifiers xii, xiii): two digits at least
        "ID",
        re.compile(
            r"\b(?:(?:serial|plate)\s*(?:number|no\.?|#)|s/n|vin|imei|udi|licen[cs]e\s+plate)"
            r"\s*(?:number|no\.?|#)?\s*(?:is\s+)?[:#]?\s*(?=[\w-]*\d[\w-]*\d)([A-Z0-9][A-Z0-9-]{3,}[A-Z0-9])\b",
            re.I,
        ),
        1,
    ),
    ("Location", re.compile(_STREET), 0),
    ("Location", re.compile(_CITY_STATE_ZIP), 1),  # Boston, MA 02115: the city
    ("Location", re.compile(_CITY_STATE_ZIP), 2),  # and the ZIP code
)


def find_rule_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Yield ``(start, end, label)`` for every rule match (may overlap; resolved by the caller)."""
    for label, pattern, group in RULES:
        for m in pattern.finditer(text):
            start, end = m.span(group)
            if end > start:
                if label == "DateYear" and (_is_measurement(text, start, end) or _is_clock_time(text, start, end)):
                    continue
                if label == "Phone" and group == 0 and _is_range(text[start:end]):
                    continue
                if label == "Date" and _is_ratio(text, start, end):
                    continue
                yield start, end, label


def _is_measurement(text: str, start: int, end: int) -> bool:
    """A four-digit number followed by a unit (``2000 cc``, ``1993 ml``) is not a year."""
    tail = text[end : end + 6].lower().lstrip()
    return tail.startswith(("cc", "ml", "mg", "mcg", "kg", "g ", "units", "u ", "l ", "ml/", "x"))


_TIME_BEFORE = re.compile(
    r"(?:\bat|@|\bby|\bdue|~|\bfrom|\buntil|\btill?|\bto|\bstart(?:ed)?|\bafter|\bbefore|"
    r"\bsince|\baround|\bapprox\.?|\baprox\.?|\bcpks?|\bck)\s*$",
    re.I,
)


def _is_clock_time(text: str, start: int, end: int) -> bool:
    """``at 2000``, ``@ 2030``, ``2000 to 2400``: a 24-hour clock time, not a year."""
    surface = text[start:end]
    if not surface.isdigit() or int(surface) < 2000:
        return False
    if _TIME_BEFORE.search(text[max(0, start - 12) : start]):
        return True
    return re.match(r"\s*(?:-|to)\s*\d{4}\b|\s*(?:hrs?|h)\b", text[end : end + 10], re.I) is not None


def _is_range(surface: str) -> bool:
    """``500-1000``, ``460. 2100``: a numeric range or two numbers, not a 7-digit phone number."""
    if ". " in surface:
        return True
    nums = re.findall(r"\d+", surface)
    return len(nums) == 2 and nums[1].endswith("00") and int(nums[0]) < int(nums[1])


_VENT_CONTEXT = re.compile(
    r"(?<![a-z])(?:cpap|bipap|peep|ps|psv|ips|ipap|epap|pap|vent\w*|imv|simv|a/c|ac|mask|"
    r"fio2|wean\w*|perrla?|strength|settings?)(?![a-z])",
    re.I,
)
_RATIO_BEFORE = re.compile(
    r"(?<![a-z])(?:ps|psv|cpap|peep|imv|simv|x|bp|vent|flowby|ac|settings?|wean\w*|down to|cp|c/o)\s*(?:of\s*)?[-:=]?\s*$",  # noqa: E501
    re.I,
)


def _is_ratio(text: str, start: int, end: int) -> bool:
    """Slash numbers that are fractions, pain scores or ventilator settings, not dates."""
    surface = text[start:end]
    if "/" not in surface:
        return False
    parts = surface.split(".")[0].split("/")
    if len(parts) == 2:
        a, b = int(parts[0]), int(parts[1])
        if (a, b) in {(1, 2), (1, 3), (1, 4), (2, 3), (3, 4)} or (
            b == 10
            and a <= 10
            and re.search(r"pain|\bcp\b|chest|discomfort|c/o", text[max(0, start - 30) : end + 8], re.I) is not None
        ):
            return True
    after = text[end : end + 1]
    if after and (after.isalpha() or after in "%/"):
        return True
    if after == "." and text[end + 1 : end + 2].isdigit():  # 5/3.27 (co/ci/svr)
        return True
    if start >= 2 and text[start - 1] in "-." and text[start - 2].isdigit():  # 3.5-4/1.7
        return True
    if (
        len(parts) == 2
        and max(int(parts[0]), int(parts[1])) <= 30
        and int(parts[1]) <= int(parts[0]) + 5
        and _VENT_CONTEXT.search(text[max(0, start - 25) : end + 12])
    ):
        return True
    if re.search(r"\b[rl]\s*ac\s*$", text[max(0, start - 8) : start], re.I):  # R AC 11/17: antecubital line
        return False
    return bool(_RATIO_BEFORE.search(text[max(0, start - 8) : start]))


MONTH_NAMES = MONTHS
