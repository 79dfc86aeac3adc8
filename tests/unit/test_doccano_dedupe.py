"""Push collapses identical duplicate spans the way Doccano stores them."""

from clinical_nlp.doccano.codec import decode_triples, encode_spans
from clinical_nlp.doccano.push_checks import dedupe_spans
from clinical_nlp.edits import edit_summary
from clinical_nlp.types import AnnotatedNote, Note, Span


def test_identical_duplicates_collapse_and_roundtrip_has_no_edits():
    text = "No chest pain today."
    pain = Span(3, 13, "Condition", "chest pain", {"negation": "negated"})
    today = Span(14, 19, "Temporal", "today")
    doc = AnnotatedNote(Note("n1", text), (pain, today, pain))
    deduped = dedupe_spans(doc)
    assert deduped.spans == (pain, today)
    pulled = decode_triples(text, encode_spans(deduped.spans))
    assert edit_summary(deduped.spans, pulled)["total"] == 0
    # without the collapse, an untouched note would show a deletion
    assert edit_summary(doc.spans, pulled)["total"] > 0


def test_spans_differing_in_attributes_are_not_collapsed():
    text = "No chest pain today."
    a = Span(3, 13, "Condition", "chest pain", {"negation": "negated"})
    b = Span(3, 13, "Condition", "chest pain", {"negation": "affirmed"})
    assert len(dedupe_spans(AnnotatedNote(Note("n", text), (a, b))).spans) == 2
