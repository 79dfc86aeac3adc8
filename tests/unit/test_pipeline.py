"""The spaCy pre-annotation pipeline: components, provenance, sections, temporal spans."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinical_nlp.config import default_guidelines_dir
from clinical_nlp.errors import ConfigError, InputFormatError
from clinical_nlp.pipeline import build_pipeline, pipeline_version, preannotate
from clinical_nlp.types import Note

NOTE = Note("n1", "Past Medical History: diabetes, hypertension.\n\nFamily History: mother had breast cancer.\n\n"
                  "HPI: Patient denies chest pain. Started aspirin 2 weeks ago.", {"date": "2024-03-15"})


@pytest.fixture(scope="module")
def nlp():
    return build_pipeline()


@pytest.fixture(scope="module")
def nlp_rules():
    return build_pipeline(rules_only=True)


def _by_text(doc):
    return {s.text: s for s in doc.spans}


def test_components_and_version(nlp) -> None:
    names = nlp.pipe_names
    for comp in ("medspacy_pyrush", "medspacy_target_matcher", "medspacy_sectionizer", "medspacy_context",
                 "clinical_nlp_temporal_v1", "clinical_nlp_assertion_v1"):
        assert comp in names
    v = pipeline_version(nlp)
    assert v.startswith("clinical-nlp-pipeline@0.1.0+rules:") and "+assert:assertion-linear@" in v


@pytest.mark.parametrize("fixture", ["nlp", "nlp_rules"])
def test_preannotate_attributes_sections_and_provenance(fixture, request) -> None:
    nlp = request.getfixturevalue(fixture)
    (doc,) = list(preannotate([NOTE], nlp))
    spans = _by_text(doc)
    assert spans["diabetes"].label == "Condition"
    assert spans["diabetes"].temporality == "historical"          # Past Medical History section
    assert spans["breast cancer"].experiencer == "family"         # Family History section / cue
    assert spans["pain"].negation == "negated"
    assert spans["aspirin"].label == "Drug" and spans["aspirin"].negation == "affirmed"
    for s in doc.spans:
        assert NOTE.text[s.start:s.end] == s.text
        assert s.source and s.source.startswith(pipeline_version(nlp))
        assert s.score is not None and 0 < s.score <= 1
    assert "entity:rule:chia-" in spans["diabetes"].source
    t = spans["2 weeks ago"]
    assert t.label == "Temporal" and t.attributes["value"] == "2024-03-01" and t.attributes["type"] == "DATE"


def test_rules_only_source_names_rule_ids(nlp_rules) -> None:
    (doc,) = list(preannotate([NOTE], nlp_rules))
    assert "medspacy-en-" in _by_text(doc)["pain"].source


def test_empty_note_is_an_error(nlp) -> None:
    with pytest.raises(InputFormatError, match="'e1': empty text"):
        list(preannotate([Note("e1", "   ")], nlp))


def test_batches_keep_order(nlp) -> None:
    notes = [Note(f"n{i}", f"No fever on day {i}.") for i in range(7)]
    out = list(preannotate(notes, nlp, batch_size=3))
    assert [d.id for d in out] == [n.id for n in notes]


def test_missing_guidelines(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="entity rule file not found"):
        build_pipeline(guidelines_dir=tmp_path)


def test_entity_rules_use_schema_labels() -> None:
    import json

    import yaml

    schema = yaml.safe_load((default_guidelines_dir() / "label_schema.yaml").read_text())
    labels = {lab["name"] for lab in schema["labels"]}
    rows = [json.loads(x) for x in (default_guidelines_dir() / "entity_rules.jsonl").read_text().splitlines()]
    assert len(rows) > 300
    assert {r["category"] for r in rows} <= labels


def test_foreign_nlp_has_no_version() -> None:
    import spacy

    with pytest.raises(ConfigError):
        pipeline_version(spacy.blank("en"))
