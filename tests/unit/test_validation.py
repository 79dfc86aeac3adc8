"""The one validation gate for annotations: white space is not an answer, and a dragged space is not a new one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clinical_nlp.config import load_label_schema
from clinical_nlp.services.validation import span_problems, trim_white_space
from clinical_nlp.types import Note, Span

SCHEMA = load_label_schema()


def test_a_span_of_white_space_only_is_a_problem_wherever_it_comes_from():
    note = Note("n1", "No fever.\n\nCough.")
    good, bad = span_problems(note, [Span(9, 11, "Condition"), Span(3, 8, "Condition")], SCHEMA)
    assert [s.text for s in good] == ["fever"]
    assert bad == ["[9, 11) 'Condition': covers only white space ('\\n\\n')"]


@given(st.text(alphabet="ab \n\t", min_size=1, max_size=30), st.data())
def test_trimming_keeps_the_words_and_only_drops_edge_space(text, data):
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    (span,) = trim_white_space(text, [Span(start, end, "Condition", text[start:end])])
    covered = text[start:end]
    if covered.strip():
        assert span.text == covered.strip() == text[span.start : span.end]
        assert start <= span.start < span.end <= end
    else:
        assert (span.start, span.end) == (start, end)  # left for the gate to name
