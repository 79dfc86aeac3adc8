"""Temporal expressions: real Chia ``Temporal`` spans with their expected ISO 8601 values."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.pipeline.temporal import duration_iso, find_temporal, shift

REF = "2024-03-15"

# (expression as written in Chia train, type, value, relation, mod) with the note dated 2024-03-15.
CHIA_CASES = [
    ("within the last 6 months", "RELATIVE", "2023-09-15/2024-03-15", "before", None),
    ("within 90 days prior to study initiation", "RELATIVE", "P90D", "before", None),
    ("within 3 months prior to screening", "RELATIVE", "P3M", "before", None),
    ("for 12 months", "DURATION", "P12M", "overlap", None),
    ("90 days prior to study initiation", "RELATIVE", "P90D", "before", None),
    ("within 30 days prior to study initiation", "RELATIVE", "P30D", "before", None),
    ("within 14 days prior to the study", "RELATIVE", "P14D", "before", None),
    ("within 2 years prior to the study", "RELATIVE", "P2Y", "before", None),
    ("minimum of 6 months prior to the start of the study", "RELATIVE", "P6M", "before", "AT_LEAST"),
    ("within the last year", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("for at least 3 months", "DURATION", "P3M", "overlap", "AT_LEAST"),
    ("in the prior 2 years", "RELATIVE", "2022-03-15/2024-03-15", "before", None),
    ("greater than 2 weeks", "DURATION", "P2W", "overlap", "MORE_THAN"),
    ("more than 3 months", "DURATION", "P3M", "overlap", "MORE_THAN"),
    ("past 12 months", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("within 12 months", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("within 3 months", "RELATIVE", "2023-12-15/2024-03-15", "before", None),
    ("in the past 6 months", "RELATIVE", "2023-09-15/2024-03-15", "before", None),
    ("within four weeks prior to the surgery", "RELATIVE", "P4W", "before", None),
    ("in the last three years", "RELATIVE", "2021-03-15/2024-03-15", "before", None),
    ("< 1 month", "DURATION", "P1M", "overlap", "LESS_THAN"),
    ("in last 6 months", "RELATIVE", "2023-09-15/2024-03-15", "before", None),
    ("in the last 4 weeks", "RELATIVE", "2024-02-16/2024-03-15", "before", None),
    ("in the last 6 weeks", "RELATIVE", "2024-02-02/2024-03-15", "before", None),
    ("in the past month", "RELATIVE", "2024-02-15/2024-03-15", "before", None),
    ("the past year", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("last year", "DATE", "2023", "before", None),
    ("past 30 days", "RELATIVE", "2024-02-14/2024-03-15", "before", None),
    ("≤ 3 weeks prior to cycle 1", "RELATIVE", "P3W", "before", "AT_MOST"),
    ("last month", "DATE", "2024-02", "before", None),
    ("last 12 months", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("last 30 days", "RELATIVE", "2024-02-14/2024-03-15", "before", None),
    ("during the past 1 week", "RELATIVE", "2024-03-08/2024-03-15", "before", None),
    ("past 3 months", "RELATIVE", "2023-12-15/2024-03-15", "before", None),
    ("previous 6 weeks", "RELATIVE", "2024-02-02/2024-03-15", "before", None),
    ("within the 3 months prior to screening", "RELATIVE", "P3M", "before", None),
    ("previous 12 months", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("less than 6 months", "DURATION", "P6M", "overlap", "LESS_THAN"),
    ("at least 4 months prior to inclusion", "RELATIVE", "P4M", "before", "AT_LEAST"),
    ("within 2 weeks", "RELATIVE", "2024-03-01/2024-03-15", "before", None),
    ("<15 days", "DURATION", "P15D", "overlap", "LESS_THAN"),
    ("7 days prior", "RELATIVE", "P7D", "before", None),
    ("within 28 days prior", "RELATIVE", "2024-02-16/2024-03-15", "before", None),
    ("in the month prior to screening", "RELATIVE", "P1M", "before", None),
    ("within 6 months of screening", "RELATIVE", "P6M", "before", None),
    ("more than 20 years ago", "DATE", "2004-03-15", "before", "MORE_THAN"),
    (">12 month ago", "DATE", "2023-03-15", "before", "MORE_THAN"),
    ("between November 2015 and November 2016", "DATE", "2015-11/2016-11", "before", None),
    ("< 3 months", "DURATION", "P3M", "overlap", "LESS_THAN"),
    ("in the last 3 months", "RELATIVE", "2023-12-15/2024-03-15", "before", None),
    ("in the past 12 months", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("within one month of screening", "RELATIVE", "P1M", "before", None),
    ("within 1 year", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("within the last month", "RELATIVE", "2024-02-15/2024-03-15", "before", None),
    ("within the last 12 months", "RELATIVE", "2023-03-15/2024-03-15", "before", None),
    ("within 48 hours", "RELATIVE", "PT48H", "before", None),
    ("history", "RELATIVE", "PAST_REF", "before", None),
    ("Current", "RELATIVE", "PRESENT_REF", "overlap", None),
    ("concomitant", "RELATIVE", "PRESENT_REF", "overlap", None),
    ("prior", "RELATIVE", "PAST_REF", "before", None),
    ("during the study", "RELATIVE", "PRESENT_REF", "overlap", None),
    ("at screening", "RELATIVE", "PRESENT_REF", "overlap", None),
    ("at baseline", "RELATIVE", "PRESENT_REF", "overlap", None),
    ("at the Screening Visit", "RELATIVE", "PRESENT_REF", "overlap", None),
    ("pre-existing", "RELATIVE", "PAST_REF", "before", None),
    ("before surgery", "RELATIVE", "PAST_REF", "before", None),
    ("ongoing", "RELATIVE", "PRESENT_REF", "overlap", None),
]


def test_at_least_fifty_chia_cases() -> None:
    assert len(CHIA_CASES) >= 50
    assert len({c[0] for c in CHIA_CASES}) == len(CHIA_CASES)


@pytest.mark.parametrize("text,typ,value,relation,mod", CHIA_CASES)
def test_chia_expression_normalised(text: str, typ: str, value: str, relation: str, mod: str | None) -> None:
    sentence = f"Patients treated {text} are excluded."
    found = find_temporal(sentence, reference=REF)
    match = [t for t in found if t.text == text]
    assert match, f"{text!r} not detected as a whole; found {[t.text for t in found]}"
    t = match[0]
    assert (t.type, t.value, t.relation, t.mod) == (typ, value, relation, mod)
    assert sentence[t.start : t.end] == text


@pytest.mark.parametrize(
    "text,value",
    [
        ("seen 2 weeks ago", "2024-03-01"),
        ("on 03/04/2021 he fell", "2021-03-04"),
        ("surgery on 2019-07-01", "2019-07-01"),
        ("in March 2020", "2020-03"),
        ("yesterday", "2024-03-14"),
    ],
)
def test_dates(text: str, value: str) -> None:
    assert [t.value for t in find_temporal(text, REF) if t.type == "DATE"] == [value]


def test_issue_examples() -> None:
    got = {t.text: t for t in find_temporal("Since 2019 pain; prior to study start; 2 weeks ago.", REF)}
    assert got["Since 2019"].value == "2019/2024-03-15" and got["Since 2019"].relation == "after"
    assert got["prior to study start"].anchor == "study start"
    assert got["prior to study start"].relation == "before"
    assert got["2 weeks ago"].value == "2024-03-01"


@pytest.mark.parametrize(
    "text,value",
    [
        ("aspirin twice daily", "R2/P1D"),
        ("every 6 hours", "R/PT6H"),
        ("3 times a day", "R3/P1D"),
        ("q4h", "R/PT4H"),
        ("weekly", "R/P1W"),
    ],
)
def test_sets(text: str, value: str) -> None:
    sets = [t for t in find_temporal(text, REF) if t.type == "SET"]
    assert [t.value for t in sets] == [value]


def test_time_and_no_reference() -> None:
    t = find_temporal("given at 10:30 pm", None)
    assert [(x.type, x.value) for x in t] == [("TIME", "T22:30")]
    # without a note date relative expressions fall back to durations / TIMEX3 references
    (w,) = find_temporal("within the last 6 months", None)
    assert w.value == "P6M"
    (a,) = find_temporal("2 weeks ago", None)
    assert a.value == "PAST_REF"


def test_month_arithmetic_clamps_day() -> None:
    assert shift(dt.date(2024, 3, 31), 1, "M", -1) == dt.date(2024, 2, 29)
    assert duration_iso(48, "TH") == "PT48H"


def test_no_false_positive_on_plain_text() -> None:
    assert find_temporal("Blood pressure normal, lungs clear.", REF) == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_spans_are_ordered_disjoint_and_exact(text: str) -> None:
    found = find_temporal(text, REF)
    last = -1
    for t in found:
        assert 0 <= t.start < t.end <= len(text)
        assert text[t.start : t.end] == t.text
        assert t.start >= last
        last = t.end
        assert t.type in {"DATE", "TIME", "DURATION", "SET", "RELATIVE"}
        assert t.relation in {"before", "after", "overlap"}
