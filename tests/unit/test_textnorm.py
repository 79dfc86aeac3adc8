"""Zero-width and no-break spaces, non-breaking hyphens: read as plain ones, offsets unchanged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clinical_nlp.textnorm import plain_text


@given(st.text(max_size=60))
def test_same_length_and_ascii_text_unchanged(text):
    out = plain_text(text)
    assert len(out) == len(text)
    assert all(a == b for a, b in zip(text, out, strict=True) if a.isascii())


def test_the_characters_of_pasted_text():
    assert plain_text("edema.\u200b Tylenol\u00a0500\ufeff") == "edema.  Tylenol 500 "
    assert plain_text("617\u2011555\u20110199, 3\u20134\u2212") == "617-555-0199, 3-4-"
    assert plain_text("a\u2028b") == "a\nb" and plain_text("é字\U0001f600") == "é字\U0001f600"


def test_deid_reads_through_them():
    from clinical_nlp.deid.core import Detector

    text = "Mr. John\u200b Smith, call 617\u2011555\u20110199, seen 3\u20114\u20112020."
    found = {(text[s.start : s.end], s.label) for s in Detector().detect(text)}
    assert {("Smith", "PTName"), ("617\u2011555\u20110199", "Phone"), ("3\u20114\u20112020", "Date")} <= found


def test_surrogate_of_a_date_with_non_breaking_hyphens_keeps_its_form():
    from clinical_nlp.deid.surrogates import SurrogateMaker

    out = SurrogateMaker(b"k").surrogate("p1", "Date", "3\u20114\u20112020")
    assert out != "[DATE]" and out.count("-") == 2


def test_preannotation_finds_what_a_zero_width_space_hid():
    from clinical_nlp.pipeline import build_pipeline, preannotate
    from clinical_nlp.types import Note

    nlp = build_pipeline(rules_only=True)
    plain, pasted = "No edema. Aspirin daily.", "No edema.\u200b Aspirin\u00a0daily."
    (a,) = preannotate([Note("a", plain)], nlp)
    (b,) = preannotate([Note("b", pasted)], nlp)
    assert [(s.text, s.label) for s in a.spans] == [(s.text.replace("\u00a0", " "), s.label) for s in b.spans]
    assert b.note.text == pasted and all(s.text == pasted[s.start : s.end] for s in b.spans) and b.spans
