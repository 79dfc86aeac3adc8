"""Assertion classifier: rules, cascade, model file, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.errors import ConfigError, InputFormatError, OffsetMismatchError
from clinical_nlp.pipeline import assertion as A


def _row(text: str, concept: str) -> tuple[str, int, int]:
    start = text.index(concept)
    return (text, start, start + len(concept))


@pytest.mark.parametrize("rules_only", [True, False])
@pytest.mark.parametrize(
    "text,concept,attr,value",
    [
        ("No evidence of pneumonia.", "pneumonia", "negation", "negated"),
        ("The patient denies chest pain.", "chest pain", "negation", "negated"),
        ("Chest pain is present.", "Chest pain", "negation", "affirmed"),
        ("She should return if she develops fever.", "fever", "temporality", "hypothetical"),
        ("History of myocardial infarction.", "myocardial infarction", "temporality", "historical"),
        ("Her mother had breast cancer.", "breast cancer", "experiencer", "family"),
        ("Acute cough today.", "cough", "temporality", "recent"),
    ],
)
def test_classic_cases(rules_only: bool, text: str, concept: str, attr: str, value: str) -> None:
    (res,) = A.classify_assertions([_row(text, concept)], rules_only=rules_only)
    assert res[attr] == value
    assert set(res) == {"negation", "temporality", "experiencer"}


def test_termination_closes_negation_scope() -> None:
    text = "No fever but has cough."
    (res,) = A.classify_assertions([_row(text, "cough")], rules_only=True)
    assert res["negation"] == "affirmed"


@pytest.mark.parametrize("rules_only", [True, False])
@pytest.mark.parametrize(
    "text,concept,value",
    [
        ("No fever or chills. Metformin 500 mg twice daily.", "Metformin", "affirmed"),  # cue a sentence before
        ("Denies fever. Cough since Monday.", "Cough", "affirmed"),
        ("No fever. No cough.", "cough", "negated"),  # its own sentence's cue still counts
        ("Patient denies fever.", "fever", "negated"),
    ],
)
def test_negation_scope_ends_at_the_sentence(rules_only: bool, text: str, concept: str, value: str) -> None:
    (res,) = A.classify_assertions([_row(text, concept)], rules_only=rules_only)
    assert res["negation"] == value


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["No fever.", "Denies pain;", "Cough.", "BP 120/80.", "\n\nPlan:", "Seen"]), max_size=4),
    st.sampled_from(["Edema", "rash", "Metformin"]),
    st.lists(st.sampled_from([" today.", " No cough.", "\n\nHPI: x", " and chills"]), max_size=3),
)
def test_sentence_bounds_hold_the_concept_and_no_earlier_break(
    before: list[str], concept: str, after: list[str]
) -> None:
    head = " ".join(before) + (" " if before else "")
    text = head + concept + "".join(after)
    s, e = A._sentence_bounds(text, len(head), len(head) + len(concept))
    assert s <= len(head) and len(head) + len(concept) <= e <= len(text)
    if before and before[-1].endswith((".", ";")) and concept[0].isupper():
        assert s == len(head)  # the sentence starts at the concept, after the break before it


def test_details_carry_score_and_provenance() -> None:
    (res,) = A.classify_assertions([_row("No fever.", "fever")], rules_only=True, details=True)
    assert res["source"].startswith("rules:context@") and "[" in res["source"]
    assert 0 < res["score"] <= 1
    if A.default_model_available():
        (m,) = A.classify_assertions([_row("No fever.", "fever")], details=True)
        assert m["source"].startswith("model:assertion-linear@")
        assert set(m["scores"]) == set(A.ATTRIBUTES)


def test_cascade_passes_rule_decisions_through() -> None:
    decision = {"negation": ("negated", ["r1"]), "temporality": ("historical", ["r2"]), "experiencer": ("patient", [])}
    out = A.apply_cascade({"negation": "affirmed", "temporality": "recent", "experiencer": "patient"}, decision)
    assert out["negation"] == "negated"  # pass-through
    assert out["temporality"] == "recent"  # historical is left to the model


def test_shipped_model_is_small_and_loads() -> None:
    path = A.DEFAULT_MODEL_DIR / A.MODEL_FILE
    assert path.exists(), "run `make model`"
    assert path.stat().st_size < 3_000_000
    model = A.load_model(None)
    assert set(model.classes) >= {"negation", "temporality"}


def test_model_roundtrip(tmp_path: Path) -> None:
    model = A.LinearAssertionModel(
        {"negation": {"BIAS": [0.0, 1.0]}}, {"negation": ["affirmed", "negated"]}, {"name": "toy", "version": "1"}, ""
    )
    model.save(tmp_path)
    (res,) = A.classify_assertions([_row("Fever.", "Fever")], model=tmp_path)
    assert res["negation"] == "negated"  # the toy model always says negated


@pytest.mark.parametrize(
    "row,exc,msg",
    [
        (("No fever", 3, 20), OffsetMismatchError, "outside the text"),
        (("No fever", 5, 5), OffsetMismatchError, "cover no character"),
        (("No fever", "3", 8), OffsetMismatchError, "integers"),
        (("   ", 0, 1), InputFormatError, "empty text"),
        (("x" * (A.MAX_TEXT_CHARS + 1), 0, 1), InputFormatError, "exceeds"),
    ],
)
def test_bad_rows_name_the_row(row, exc, msg) -> None:
    with pytest.raises(exc, match=msg) as info:
        A.classify_assertions([("Fine.", 0, 4), row])
    assert "row 1" in str(info.value)


def test_concept_mismatch_is_reported() -> None:
    with pytest.raises(OffsetMismatchError, match="not the concept 'fever'"):
        A.check_row("No fever", 0, 2, row="r7", concept="fever")


def test_bad_rule_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid JSON"):
        A.load_cue_rules(str(bad))
    missing = tmp_path / "none.json"
    with pytest.raises(ConfigError, match="not found"):
        A.load_cue_rules(str(missing))


def test_bad_model_file(tmp_path: Path) -> None:
    (tmp_path / A.MODEL_FILE).write_text(json.dumps({"nope": 1}), encoding="utf-8")
    with pytest.raises(ConfigError, match="not a clinical-nlp assertion model"):
        A.LinearAssertionModel.load(tmp_path)


def test_rule_file_compiles_token_patterns() -> None:
    rules, digest = A.load_cue_rules(None)
    assert len(rules) > 100 and len(digest) == 12
    cats = {r.category for r in rules}
    assert {"NEGATED_EXISTENCE", "HISTORICAL", "HYPOTHETICAL", "FAMILY", "TERMINATE"} <= cats
    # a medspaCy token pattern ("adequate|sufficient to rule (him|her)? out") became a regex
    assert any(r.regex.search("sufficient to rule her out") for r in rules)


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=120, deadline=None)
@given(st.text(min_size=1, max_size=120).filter(str.strip), st.data(), st.booleans())
def test_any_valid_row_gets_allowed_values(text: str, data, rules_only: bool) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    (res,) = A.classify_assertions([(text, start, end)], rules_only=rules_only, details=True)
    assert res["negation"] in {"affirmed", "negated", "possible"}
    assert res["temporality"] in {"recent", "historical", "hypothetical"}
    assert res["experiencer"] in {"patient", "family", "other"}
    assert 0.0 < res["score"] <= 1.0


_WORDS = ["no", "denies", "history", "of", "mother", "possible", "if", "pain", "fever", "but", "resolved", "."]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), min_size=3, max_size=30), st.data())
def test_cue_prefilter_caches_change_no_decision(words, data):
    """The note- and sentence-level rule prefilters (cached) give the cues a full scan gives."""
    rules, _ = A.load_cue_rules()
    text = " ".join(words)
    i = data.draw(st.integers(0, len(words) - 1))
    start = len(" ".join(words[:i])) + (1 if i else 0)
    end = start + len(words[i])
    s, e = A._sentence_bounds(text, start, end)
    lower = text[s:e].lower()
    full = A._cues(rules, lower[: start - s], lower[end - s :])
    feats, decision = A.extract(text, start, end, rules)
    assert A._rule_decision(*full) == decision
    assert A.extract(text, start, end, rules) == (feats, decision)  # a cache hit answers the same
