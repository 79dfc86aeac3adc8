"""The core data model: Span validation, verify_span, AnnotatedNote."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.errors import OffsetMismatchError
from clinical_nlp.types import AnnotatedNote, Annotation, Note, Span, span_surface, verify_span


def test_note_accessors():
    note = Note("n1", "No fever.", {"patient": 7, "date": "2024-01-02", "note_type": "progress"})
    assert (note.patient, note.date, note.note_type) == ("7", "2024-01-02", "progress")
    assert Note("n2", "x").patient is None


@pytest.mark.parametrize("start,end", [(-1, 3), (3, 3), (5, 2)])
def test_span_rejects_bad_offsets(start, end):
    with pytest.raises(OffsetMismatchError, match="invalid offsets"):
        Span(start, end, "Condition")


def test_span_rejects_non_integer_and_stray_fragment():
    with pytest.raises(OffsetMismatchError, match="integers"):
        Span("1", 3, "Condition")  # type: ignore[arg-type]
    with pytest.raises(OffsetMismatchError, match="outside"):
        Span(0, 5, "Condition", fragments=((0, 2), (4, 9)))


def test_fragments_sorted_and_single_fragment_dropped():
    s = Span(0, 10, "C", fragments=((6, 10), (0, 2)))
    assert s.fragments == ((0, 2), (6, 10)) and s.is_discontinuous
    assert Span(0, 4, "C", fragments=((0, 4),)).fragments is None


def test_attribute_defaults_and_dict_round_trip():
    s = Span(0, 2, "Condition", "No", {"negation": "negated"}, score=0.5, source="model", id="T1", fragments=None)
    assert (s.negation, s.temporality, s.experiencer) == ("negated", "recent", "patient")
    assert Span.from_dict(s.to_dict()) == s
    assert (
        Span.from_dict({"start": 0, "end": 2, "label": "C", "attributes": {"temporality": "historical"}}).temporality
        == "historical"
    )
    with pytest.raises(OffsetMismatchError, match="misses field 'label'"):
        Span.from_dict({"start": 0, "end": 2})


def test_verify_span_fills_text_and_names_document():
    text = "No fever today"
    assert verify_span(text, Span(3, 8, "C"), doc_id="d").text == "fever"
    with pytest.raises(OffsetMismatchError, match=r"document 'd9': span 'C' \[3, 8\) covers 'fever' but claims"):
        verify_span(text, Span(3, 8, "C", "fevers"), doc_id="d9")
    with pytest.raises(OffsetMismatchError, match="beyond the text"):
        verify_span(text, Span(3, 80, "C"), doc_id="d")
    disc = Span(0, 14, "C", fragments=((0, 2), (9, 14)))
    assert verify_span(text, disc, doc_id="d").text == "No today" == span_surface(text, disc)


def test_annotated_note_verified_and_annotation_spans():
    doc = AnnotatedNote(Note("n", "No pain"), (Span(3, 7, "C"),)).verified()
    assert doc.spans[0].text == "pain" and doc.id == "n" and doc.text == "No pain"
    ann = Annotation("n", "alice", doc.spans)
    assert ann.spans == doc.spans and ann.timestamp
    assert Annotation("img", "bob", {"box": [1, 2]}).spans == ()


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=60), st.data())
def test_property_verify_span_rejects_mismatches(text, data):
    a = data.draw(st.integers(0, len(text) - 1))
    b = data.draw(st.integers(a + 1, len(text)))
    good = Span(a, b, "L", text[a:b])
    assert verify_span(text, good, doc_id="d") == good
    claim = data.draw(st.text(min_size=1, max_size=10).filter(lambda t: t != text[a:b]))
    with pytest.raises(OffsetMismatchError, match="document 'd'"):
        verify_span(text, Span(a, b, "L", claim), doc_id="d")
    with pytest.raises(OffsetMismatchError):
        verify_span(text, Span(a, len(text) + 1 + b, "L"), doc_id="d")
