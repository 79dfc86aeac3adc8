"""The spaCy pre-annotation pipeline: components, provenance, sections, temporal spans."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinical_nlp.config import default_guidelines_dir
from clinical_nlp.errors import ConfigError
from clinical_nlp.pipeline import build_pipeline, pipeline_version, preannotate
from clinical_nlp.types import Note

NOTE = Note(
    "n1",
    "Past Medical History: diabetes, hypertension.\n\nFamily History: mother had breast cancer.\n\n"
    "HPI: Patient denies chest pain. Started aspirin 2 weeks ago.",
    {"date": "2024-03-15"},
)


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
    for comp in (
        "clinical_nlp_sentences_v1",
        "medspacy_target_matcher",
        "medspacy_sectionizer",
        "clinical_nlp_temporal_v1",
        "clinical_nlp_assertion_v1",
    ):
        assert comp in names
    # the cue cascade replaces medspaCy ConText/PyRuSH by default (0.2.0)
    assert "medspacy_context" not in names and "medspacy_pyrush" not in names
    v = pipeline_version(nlp)
    assert v.startswith("clinical-nlp-pipeline@0.2.0+rules:") and "+assert:assertion-linear@" in v
    assert "+context:medspacy" not in v


def test_medspacy_context_mode_and_bad_mode() -> None:
    nlp = build_pipeline(rules_only=True, context="medspacy")
    assert "medspacy_context" in nlp.pipe_names and "medspacy_pyrush" in nlp.pipe_names
    assert pipeline_version(nlp).endswith("+context:medspacy")
    (doc,) = list(preannotate([NOTE], nlp))
    spans = _by_text(doc)
    assert spans["pain"].negation == "negated" and spans["diabetes"].temporality == "historical"
    with pytest.raises(ConfigError, match="context='x'"):
        build_pipeline(context="x")


def test_sentence_splitter_clinical_breaks(nlp) -> None:
    doc = nlp("Past Medical History: diabetes.\nFamily History: none. Denies pain; reports cough.\n\nPLAN: rest")
    starts = [s.text.split()[0] for s in doc.sents]
    assert starts == ["Past", "Family", "Denies", "PLAN:"]  # "; reports" (lower case) does not break
    assert all(not s[0].is_space for s in doc.sents)


@pytest.mark.parametrize("fixture", ["nlp", "nlp_rules"])
def test_preannotate_attributes_sections_and_provenance(fixture, request) -> None:
    nlp = request.getfixturevalue(fixture)
    (doc,) = list(preannotate([NOTE], nlp))
    spans = _by_text(doc)
    assert spans["diabetes"].label == "Condition"
    assert spans["diabetes"].temporality == "historical"  # Past Medical History section
    assert spans["breast cancer"].experiencer == "family"  # Family History section / cue
    assert spans["pain"].negation == "negated"
    assert spans["aspirin"].label == "Drug" and spans["aspirin"].negation == "affirmed"
    for s in doc.spans:
        assert NOTE.text[s.start : s.end] == s.text
        assert s.source and s.source.startswith(pipeline_version(nlp))
        assert s.score is not None and 0 < s.score <= 1
    assert "entity:rule:chia-" in spans["diabetes"].source
    t = spans["2 weeks ago"]
    assert t.label == "Temporal" and t.attributes["value"] == "2024-03-01" and t.attributes["type"] == "DATE"


def test_rules_only_source_names_rule_ids(nlp_rules) -> None:
    (doc,) = list(preannotate([NOTE], nlp_rules))
    assert "medspacy-en-" in _by_text(doc)["pain"].source


def test_empty_note_gets_no_spans_in_its_place(nlp) -> None:
    """An empty exclusion-criteria section is a real note: zero spans, the run goes on, order kept."""
    got = list(preannotate([Note("a", "Pain in chest."), Note("e1", "   "), Note("b", "No fever.")], nlp))
    assert [d.id for d in got] == ["a", "e1", "b"] and got[1].spans == () and got[0].spans


def test_section_headers_are_never_suggested(nlp) -> None:
    text = "MEDICATIONS: aspirin daily.\nALLERGIES: none.\n# Medications\nFAMILY HISTORY\nMother had asthma."
    (doc,) = list(preannotate([Note("h", text)], nlp))
    from clinical_nlp.pipeline.structure import header_ranges

    headers = list(header_ranges(text))
    assert len(headers) == 4
    assert not [s for s in doc.spans if s.label != "Temporal" and any(a <= s.start and s.end <= b for a, b in headers)]
    assert any(s.text == "asthma" for s in doc.spans)  # the finding under the header stays


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


def test_entity_model_spans_win_over_rule_spans(monkeypatch, tmp_path: Path) -> None:
    from clinical_nlp.models import registry
    from clinical_nlp.types import Span

    class FakeModel:
        def predict(self, notes):
            out = []
            for n in notes:
                s = n.text.index("chest pain")
                out.append((Span(s, s + len("chest pain"), "Condition", score=0.7, source="model:fake@1"),))
            return out

    monkeypatch.setattr(registry, "cached_entity_model", lambda path: FakeModel())
    nlp = build_pipeline(entity_model=tmp_path)
    assert "+ner:" in pipeline_version(nlp)
    (doc,) = list(preannotate([NOTE], nlp))
    spans = _by_text(doc)
    assert "pain" not in spans  # the overlapping rule span lost
    cp = spans["chest pain"]
    assert cp.negation == "negated" and cp.score == 0.7 and "entity:model:fake@1" in cp.source


def test_one_word_present_cues_are_found_but_not_suggested(nlp) -> None:
    text = "Currently on warfarin for active DVT, ongoing since 3 months ago; reassess at baseline."
    (out,) = preannotate([Note("n1", text)], nlp)
    temporal = {s.text for s in out.spans if s.label == "Temporal"}
    assert "3 months ago" in temporal and "at baseline" in temporal
    assert not temporal & {"Currently", "active", "ongoing"}
    found = {t.text for t in nlp(text)._.cn_temporals}
    assert {"Currently", "active", "ongoing"} <= found  # the normaliser still finds them


@pytest.mark.integration
def test_bundled_chia_real_text(nlp, corpora_dir: Path) -> None:
    from clinical_nlp.io.jsonl import iter_jsonl
    from clinical_nlp.metrics import corpus_span_prf

    docs = [
        d for d in iter_jsonl(corpora_dir / "chia" / "dev.jsonl", allow_empty=True, strict_text=False) if d.text.strip()
    ][:40]
    out = list(preannotate([d.note for d in docs], nlp, batch_size=8))
    gold = [[s for s in d.spans if s.label == "Temporal"] for d in docs]
    pred = [[s for s in d.spans if s.label == "Temporal"] for d in out]
    prf = corpus_span_prf(gold, pred, mode="overlap", labels=["Temporal"])["__micro__"]
    assert prf.recall > 0.6, prf
    cond_gold = [[s for s in d.spans if s.label == "Condition"] for d in docs]
    cond_pred = [[s for s in d.spans if s.label == "Condition"] for d in out]
    assert corpus_span_prf(cond_gold, cond_pred, mode="overlap", labels=["Condition"])["__micro__"].precision > 0.5


def test_section_context_sets_attributes_a_cue_did_not(nlp) -> None:
    text = "PAST MEDICAL HISTORY:\nDiabetes.\n\nFAMILY HISTORY:\nAsthma.\n\nASSESSMENT:\nAsthma."
    (doc,) = list(preannotate([Note("s", text)], nlp))
    by_start = {s.start: s for s in doc.spans if s.label == "Condition"}
    pmh, fam, now = by_start[text.index("Diabetes")], by_start[text.index("Asthma")], by_start[text.rindex("Asthma")]
    assert pmh.temporality == "historical" and pmh.experiencer == "patient"
    assert fam.experiencer == "family"
    assert (now.temporality, now.experiencer) == ("recent", "patient")  # the assessment section implies nothing


def test_section_context_file_is_checked(tmp_path) -> None:
    from clinical_nlp.pipeline import load_section_context

    bad = tmp_path / "section_context.yaml"
    bad.write_text("family_history:\n  experiencer: cousin\n")
    with pytest.raises(ConfigError, match="experiencer='cousin'"):
        load_section_context(bad)


def test_target_matches_reach_doc_ents_as_medspacys_own_per_match_adding_would(nlp_rules) -> None:
    """The matches enter doc.ents in one assignment (medspaCy's ``doc.ents += (span,)`` per match was
    quadratic: 60 s on a 500,000-character note); the entities and their rules are the same."""
    import medspacy.target_matcher  # noqa: F401
    import spacy

    from clinical_nlp.pipeline.entity_rules import load_entity_rules

    reference = spacy.blank("en")
    reference.add_pipe("clinical_nlp_sentences_v1")
    matcher = reference.add_pipe("medspacy_target_matcher")  # result_type "ents": one += per match
    matcher.add(load_entity_rules(default_guidelines_dir() / "entity_rules.jsonl"))
    text = "\n\n".join([NOTE.text, "Aspirin 81 mg daily; no history of stroke or heart failure."] * 40)
    ours = nlp_rules.make_doc(text)
    for name in ("clinical_nlp_sentences_v1", "medspacy_target_matcher", "clinical_nlp_target_ents_v1"):
        ours = nlp_rules.get_pipe(name)(ours)
    theirs = reference(text)

    def ents(doc):
        return [(e.start_char, e.end_char, e.label_, e._.target_rule.literal) for e in doc.ents]

    assert len(ents(theirs)) > 200 and ents(ours) == ents(theirs)
    assert "clinical_nlp_targets" not in ours.spans  # the group is emptied into doc.ents


_RANGE = st.tuples(st.integers(0, 60), st.integers(0, 20)).map(lambda p: (p[0], p[0] + p[1]))


@given(st.lists(_RANGE, max_size=12), _RANGE)
def test_interval_index_answers_as_checking_every_range_would(ranges, query) -> None:
    from clinical_nlp.pipeline.structure import IntervalIndex

    idx, (start, end) = IntervalIndex(ranges), query
    assert idx.overlaps(start, end) == any(a < end and start < b for a, b in ranges)
    assert idx.contains(start, end) == any(a <= start and end <= b for a, b in ranges)
