"""Suggested spans carry only the assertion attributes their label's schema entry lists."""

from __future__ import annotations

import pytest

from clinical_nlp.config import load_label_schema
from clinical_nlp.pipeline import build_pipeline, preannotate
from clinical_nlp.pipeline.schema_attributes import ASSERTION_ATTRIBUTES, restrict_attributes, schema_attributes
from clinical_nlp.types import Note, Span

ALL = {"negation": "negated", "temporality": "historical", "experiencer": "family"}


def test_schema_says_which_labels_carry_which_attributes() -> None:
    allowed = schema_attributes()
    assert allowed["Condition"] == ASSERTION_ATTRIBUTES
    assert allowed["Measurement"] == {"negation", "temporality"}
    assert allowed["Value"] == allowed["Negation"] == allowed["Temporal"] == frozenset()
    assert set(allowed) == {lab.name for lab in load_label_schema().labels}


@pytest.mark.parametrize(
    ("label", "extra", "kept"),
    [
        ("Condition", {}, ALL),
        ("Measurement", {}, {"negation": "negated", "temporality": "historical"}),
        ("Value", {}, {}),
        ("Temporal", {"type": "DATE", "value": "2020-01-01"}, {"type": "DATE", "value": "2020-01-01"}),
        ("Unlisted", {}, ALL),  # a label the schema does not know is left as it is
    ],
)
def test_restrict_attributes(label: str, extra: dict, kept: dict) -> None:
    span = Span(0, 4, label, "text", {**ALL, **extra})
    out = restrict_attributes(span, schema_attributes())
    assert dict(out.attributes) == kept
    assert (out.start, out.end, out.label, out.score, out.source) == (0, 4, label, None, None)


def test_preannotated_values_and_cues_carry_no_assertion(monkeypatch, tmp_path) -> None:
    """A model's Value, Negation and Measurement spans go through the assertion step, yet carry only
    what their schema lists; the Condition keeps all three."""
    from clinical_nlp.models import registry

    text = "No fever or chills. Hemoglobin 9.8 g/dL, no rash."
    wanted = [("fever", "Condition"), ("No", "Negation"), ("Hemoglobin", "Measurement"), ("9.8 g/dL", "Value")]

    class FakeModel:
        def predict(self, notes):
            return [
                tuple(Span(n.text.index(w), n.text.index(w) + len(w), lab, score=0.9) for w, lab in wanted)
                for n in notes
            ]

    monkeypatch.setattr(registry, "cached_entity_model", lambda path: FakeModel())
    spans = {
        s.text: s for s in next(iter(preannotate([Note("n1", text)], build_pipeline(entity_model=tmp_path)))).spans
    }
    assert dict(spans["fever"].attributes) == {"negation": "negated", "temporality": "recent", "experiencer": "patient"}
    assert dict(spans["Hemoglobin"].attributes) == {"negation": "affirmed", "temporality": "recent"}
    assert dict(spans["9.8 g/dL"].attributes) == {} and dict(spans["No"].attributes) == {}
    allowed = schema_attributes()
    for s in spans.values():
        assert set(s.attributes) & ASSERTION_ATTRIBUTES <= allowed.get(s.label, ASSERTION_ATTRIBUTES), s
