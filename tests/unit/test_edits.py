"""Edit summary of human labels against pre-annotations, and the Doccano attribute encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp import doccano as dc
from clinical_nlp.config import load_label_schema
from clinical_nlp.edits import EDIT_KEYS, add_summaries, edit_summary
from clinical_nlp.errors import ConfigError, DoccanoError
from clinical_nlp.types import Span

A = Span(0, 5, "Condition")
B = Span(10, 14, "Drug", attributes={"negation": "negated"})


def test_all_accepted():
    s = edit_summary([A, B], [A, B])
    assert s == {
        "accepted": 2,
        "deleted": 0,
        "added": 0,
        "changed_label": 0,
        "changed_boundary": 0,
        "changed_attributes": 0,
        "total": 0,
    }


def test_each_kind_of_edit():
    pre = [A, B, Span(20, 25, "Procedure"), Span(30, 40, "Condition"), Span(50, 55, "Drug")]
    final = [
        A.with_attributes(temporality="historical"),  # attribute changed
        Span(10, 14, "Procedure", attributes={"negation": "negated"}),  # label changed
        Span(20, 27, "Procedure"),  # boundary changed
        Span(60, 65, "Device"),  # added
    ]  # (30,40) and (50,55) deleted
    s = edit_summary(pre, final)
    assert s == {
        "accepted": 0,
        "deleted": 2,
        "added": 1,
        "changed_label": 1,
        "changed_boundary": 1,
        "changed_attributes": 1,
        "total": 6,
    }


def test_default_attribute_equals_absent():
    assert edit_summary([A], [A.with_attributes(negation="affirmed")])["accepted"] == 1


def test_add_summaries():
    s = add_summaries([edit_summary([A], []), edit_summary([], [B])])
    assert s["deleted"] == 1 and s["added"] == 1 and s["total"] == 2


spans = st.builds(
    lambda a, n, lab, neg: Span(a, a + n, lab, attributes={"negation": neg}),
    st.integers(0, 30),
    st.integers(1, 6),
    st.sampled_from(["Condition", "Drug"]),
    st.sampled_from(["affirmed", "negated"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(spans, max_size=6), st.lists(spans, max_size=6))
def test_counts_conserve_spans(pre, final):
    s = edit_summary(pre, final)
    matched = sum(s[k] for k in ("accepted", "changed_label", "changed_boundary", "changed_attributes"))
    assert matched + s["deleted"] == len(pre)
    assert matched + s["added"] == len(final)
    assert s["total"] == sum(s[k] for k in EDIT_KEYS if k != "accepted")


@settings(max_examples=100, deadline=None)
@given(st.lists(spans, max_size=6))
def test_identity_costs_nothing(pre):
    s = edit_summary(pre, list(reversed(pre)))
    assert s["total"] == 0 and s["accepted"] == len(pre)


# Doccano attribute encoding (pure, no server) -------------------------------------------
TEXT = "No fever; mother had asthma; on aspirin."


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30),
            st.integers(1, 8),
            st.sampled_from(["Condition", "Drug", "Procedure"]),
            st.sampled_from(["affirmed", "negated", "possible"]),
            st.sampled_from(["recent", "historical", "hypothetical"]),
            st.sampled_from(["patient", "family", "other"]),
        ),
        max_size=5,
    )
)
def test_encode_decode_roundtrip(items):
    # one entity per offsets pair (attributes are bound to offsets in Doccano)
    by_offsets = {}
    for a, n, lab, neg, tem, exp in items:
        by_offsets[(a, a + n)] = Span(
            a, a + n, lab, TEXT[a : a + n], {"negation": neg, "temporality": tem, "experiencer": exp}
        )
    original = sorted(by_offsets.values(), key=lambda s: s.key())
    decoded = dc.decode_triples(TEXT, dc.encode_spans(original))
    assert [(s.key(), s.text) for s in decoded] == [(s.key(), s.text) for s in original]
    for got, want in zip(decoded, original):
        assert (got.negation, got.temporality, got.experiencer) == (want.negation, want.temporality, want.experiencer)
    assert edit_summary(original, decoded)["total"] == 0


def test_encode_uses_guideline_label_names():
    triples = dc.encode_spans(
        [Span(3, 8, "Condition", attributes={"negation": "negated", "experiencer": "family", "temporality": "recent"})]
    )
    assert triples == [(3, 8, "Condition"), (3, 8, "FAM"), (3, 8, "NEG")]
    names = dc.attribute_label_names(load_label_schema())
    assert names == ["NEG", "POSS", "HIST", "HYPO", "FAM", "OTHER"]
    assert max(map(len, names)) <= 5  # read whole on Doccano's label chip (the long form was cut off)


def test_long_form_attribute_labels_of_older_projects_still_decode():
    (span,) = dc.decode_triples(TEXT, [(3, 8, "Condition"), (3, 8, "negation:negated"), (3, 8, "HIST")])
    assert (span.negation, span.temporality) == ("negated", "historical")
    # a value without a short name keeps the long form both ways
    odd = dc.encode_spans([Span(3, 8, "Condition", attributes={"temporality": "not particular"})])
    assert odd[1] == (3, 8, "temporality:not particular")
    assert dc.decode_triples(TEXT, odd)[0].temporality == "not particular"


def test_entity_label_that_clashes_with_an_attribute_label_is_refused():
    schema = load_label_schema()
    clash = schema.copy(update={"labels": [*schema.labels, schema.labels[0].copy(update={"name": "NEG"})]})
    with pytest.raises(ConfigError, match=r"\['NEG'\] clash"):
        dc.attribute_label_names(clash)


def test_guideline_legend_names_every_attribute_label():
    from clinical_nlp.doccano.codec import attribute_pairs
    from clinical_nlp.io.attribute_labels import legend_markdown

    legend = legend_markdown(attribute_pairs(load_label_schema()))
    for short, attr in [("NEG", "negation"), ("POSS", "negation"), ("HYPO", "temporality"), ("FAM", "experiencer")]:
        assert f"| `{short}` | {attr} |" in legend


def test_orphan_attribute_label_is_an_error():
    with pytest.raises(DoccanoError, match=r"\[3, 8\)"):
        dc.decode_triples(TEXT, [(3, 8, "NEG")])


def test_assignment_overlap_and_safety_critical():
    from clinical_nlp.types import AnnotatedNote, Note

    docs = [
        AnnotatedNote(Note(f"n{i}", "aspirin x"), (Span(0, 7, "Drug" if i == 3 else "Condition"),)) for i in range(6)
    ]
    plan = dc.assign(docs, ["a", "b", "c"], 2, {"Drug"})
    assert all(len(v) == 2 for k, v in plan.items() if k != "n3")
    assert plan["n3"] == ["a", "b", "c"]
    assert sum("a" in v for v in plan.values()) == 5  # round robin spreads the load


def test_credentials_hold_only_the_engines_login(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("admin_user: root\nadmin_password: s3cret\nurl: http://h:1/\n")
    c = dc.DoccanoCredentials.from_env(env={"DOCCANO_CREDENTIALS_FILE": str(f)})
    assert (c.admin_user, c.admin_password, c.url) == ("root", "s3cret", "http://h:1")
    assert "s3cret" not in repr(c)
    # annotator passwords are refused, from the environment and from the file
    with pytest.raises(DoccanoError, match="DOCCANO_USER_PASSWORDS is set"):
        dc.DoccanoCredentials.from_env(env={"DOCCANO_USER_PASSWORDS": "alice:pw1"})
    f.write_text("admin_user: root\nusers: {carol: pw3}\n")
    with pytest.raises(DoccanoError, match="lists annotator passwords"):
        dc.DoccanoCredentials.from_env(env={"DOCCANO_CREDENTIALS_FILE": str(f)})


def test_annotator_project_names():
    assert dc.annotator_project_name("clinical-nlp-demo", "alice") == "clinical-nlp-demo--alice"
    with pytest.raises(DoccanoError, match="longer than 100"):
        dc.annotator_project_name("p" * 90, "annotator-with-long-name")


def test_unchanged_suggestions_are_flagged_only_when_every_reader_accepted():
    from clinical_nlp.edits import unchanged_suggestions

    rows = [
        {"id": "n1", "annotator": "a", "edits": {"total": 0}},
        {"id": "n1", "annotator": "b", "edits": {"total": 0}},  # both accepted: flagged
        {"id": "n2", "annotator": "a", "edits": {"total": 0}},
        {"id": "n2", "annotator": "b", "edits": {"total": 2}},  # one corrected: not flagged
        {"id": "n3", "annotator": "a", "edits": {"total": 0}},  # read once: not counted
    ]
    got = unchanged_suggestions(rows)
    assert got["notes"] == ["n1"] and got["share"] == 0.5
    assert "1 of 2 notes" in got["warning"] and "measures the suggestions" in got["warning"]
    assert unchanged_suggestions(rows[2:])["warning"] is None


def test_two_values_of_one_attribute_on_a_span_are_an_error_not_a_silent_pick():
    """Before: NEG and POSS on one span kept whichever Doccano listed last; the annotator's choice was lost."""
    with pytest.raises(DoccanoError, match=r"span \[3, 8\) has two negation labels, NEG and POSS: keep one"):
        dc.decode_triples(TEXT, [(3, 8, "Condition"), (3, 8, "NEG"), (3, 8, "POSS")])
    with pytest.raises(DoccanoError, match=r"two temporality labels, HIST and HYPO"):
        dc.decode_triples(TEXT, [(3, 8, "Condition"), (3, 8, "HYPO"), (3, 8, "temporality:historical")])
    # the same value twice (long form of an older project and short form) is one choice
    (span,) = dc.decode_triples(TEXT, [(3, 8, "Condition"), (3, 8, "NEG"), (3, 8, "negation:negated")])
    assert span.negation == "negated"
