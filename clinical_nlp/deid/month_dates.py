"""Shift dates written with a month name ("03-Apr-2021", "April 3rd, 2021", "3 March 2020", "Apr-2021")
by a number of days, keeping their form: separators, abbreviation or full name, case, ordinal, year width."""

from __future__ import annotations

import datetime as _dt
import re

_FULL = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
         "november", "december"]  # fmt: skip
_MONTH = r"([A-Za-z]{3,9})(\.?)"
_YEAR = r"('?\d{2}|\d{4})"
_DAY = r"(\d{1,2})(st|nd|rd|th)?"
#: day month [year]: "03-Apr-2021", "3rd of April, 2021", "3 MAR 20"
_DAY_MONTH = re.compile(rf"^{_DAY}([-/\s]+(?:of\s+)?){_MONTH}(?:([-/,\s]+){_YEAR})?$", re.I)
#: month day [year]: "April 3rd, 2021", "Jan. 2 1930"
_MONTH_DAY = re.compile(rf"^{_MONTH}(\s+){_DAY}(?:(,?\s+){_YEAR})?$", re.I)
#: month year: "Apr-2021", "March of 2020"
_MONTH_YEAR = re.compile(rf"^{_MONTH}(,?[-/\s]+(?:of\s+)?){_YEAR}$", re.I)


def _month_number(word: str) -> int | None:
    w = word.lower()
    for number, name in enumerate(_FULL, start=1):
        if w == name or (len(w) >= 3 and name.startswith(w) and (len(w) == 3 or w == "sept")):
            return number
    return None


def _month_word(number: int, like: str) -> str:
    name = _FULL[number - 1]
    word = name if like.lower() in _FULL else name[:3]  # "Sept" and "Apr" are abbreviations, "May" is whole
    if like.isupper():
        return word.upper()
    return word.title() if like[:1].isupper() else word


def _ordinal(day: int) -> str:
    return "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _year(value: str | None) -> tuple[int, str]:
    """(year, form) of a written year; no year: 2000 (a leap year keeps 2/29)."""
    if not value:
        return 2000, ""
    digits = value.lstrip("'")
    if len(digits) == 4:
        return int(digits), "Y"
    yy = int(digits)
    return (1900 + yy if yy > 30 else 2000 + yy), ("'y" if value.startswith("'") else "y")


def _year_text(year: int, form: str) -> str:
    return {"Y": str(year), "y": f"{year % 100:02d}", "'y": f"'{year % 100:02d}"}.get(form, "")


def _shifted(word: str, day: int, ytext: str | None, days: int) -> tuple[_dt.date, str] | None:
    """The date of month ``word``, ``day`` and the written year, shifted, with the year's form."""
    month = _month_number(word)
    if month is None:
        return None
    year, form = _year(ytext)
    try:
        return _dt.date(year, month, day) + _dt.timedelta(days=days), form
    except ValueError:
        return None


def shift_month_name_date(text: str, days: int) -> str | None:
    """``text`` shifted by ``days`` in its own form, or None when it is no month-name date."""
    if m := _DAY_MONTH.match(text):
        day, suffix, sep, word, dot, ysep, ytext = m.groups()
        if (got := _shifted(word, int(day), ytext, days)) is None:
            return None
        d, form = got
        day_text = f"{d.day:0{len(day)}d}" + (_ordinal(d.day) if suffix else "")
        tail = f"{ysep}{_year_text(d.year, form)}" if ytext else ""
        return f"{day_text}{sep}{_month_word(d.month, word)}{dot}{tail}"
    if m := _MONTH_DAY.match(text):
        word, dot, sep, day, suffix, ysep, ytext = m.groups()
        if (got := _shifted(word, int(day), ytext, days)) is None:
            return None
        d, form = got
        tail = f"{ysep}{_year_text(d.year, form)}" if ytext else ""
        return f"{_month_word(d.month, word)}{dot}{sep}{d.day}{_ordinal(d.day) if suffix else ''}{tail}"
    if m := _MONTH_YEAR.match(text):
        word, dot, sep, ytext = m.groups()
        if (got := _shifted(word, 15, ytext, days)) is None:  # the month of its 15th, as for 2/2001
            return None
        d, form = got
        return f"{_month_word(d.month, word)}{dot}{sep}{_year_text(d.year, form)}"
    return None
