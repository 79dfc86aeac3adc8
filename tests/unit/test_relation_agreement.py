"""Relations compared by what they link: keys, edit counts, agreement, consensus, the schema's rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.config import AgreementThresholds, load_label_schema
from clinical_nlp.consensus.adapters.text import (
    agreement_report,
    consensus_relations,
    consensus_spans,
    load_rows,
    text_candidates,
)
from clinical_nlp.consensus.adjudication import queue_reasons
from clinical_nlp.consensus.relations import (
    binary_relations,
    majority_relations,
    relation_agreement,
    relation_edits,
    relation_keys,
    relation_prf,
    relation_problems,
    relations_for,
    with_span_ids,
)
from clinical_nlp.edits import add_summaries, full_edit_summary
from clinical_nlp.errors import InputFormatError
from clinical_nlp.types import Span

TEXT = "HbA1c > 7% and BMI < 30 or diabetes"
HB = {"id": "T1", "start": 0, "end": 5, "label": "Measurement"}
V1 = {"id": "T2", "start": 6, "end": 10, "label": "Value"}
BMI = {"id": "T3", "start": 15, "end": 18, "label": "Measurement"}
V2 = {"id": "T4", "start": 19, "end": 23, "label": "Value"}
DM = {"id": "T5", "start": 27, "end": 35, "label": "Condition"}
SPANS = [HB, V1, BMI, V2, DM]


def _spans(dicts=SPANS) -> tuple[Span, ...]:
    return tuple(Span.from_dict({**d, "text": TEXT[d["start"] : d["end"]]}) for d in dicts)


def rel(kind: str, a: str, b: str) -> dict:
    return {"type": kind, "arg1": a, "arg2": b}


def row(annotator: str, relations: list[dict], spans=SPANS) -> dict:
    return {"id": "n1", "annotator": annotator, "text": TEXT, "spans": spans, "relations": relations}


def test_keys_follow_offsets_not_ids_and_undirected_ignores_order():
    spans = _spans()
    renamed = tuple(Span(s.start, s.end, s.label, s.text, id=f"X{k}") for k, s in enumerate(spans))
    a = relation_keys(spans, [rel("Has_value", "T1", "T2"), rel("OR", "T5", "T3")], frozenset({"OR"}))
    b = relation_keys(renamed, [rel("Has_value", "X0", "X1"), rel("OR", "X2", "X4")], frozenset({"OR"}))
    assert a == b
    assert relation_keys(spans, [rel("OR", "T5", "T3")]) != relation_keys(spans, [rel("OR", "T3", "T5")])


def test_group_relations_link_consecutive_members_and_bad_ids_are_named():
    assert binary_relations([{"type": "OR", "args": ["T1", "T3", "T5"]}]) == [("OR", "T1", "T3"), ("OR", "T3", "T5")]
    with pytest.raises(InputFormatError, match=r"unknown span id\(s\) \['T9'\]"):
        relation_keys(_spans(), [rel("Has_value", "T1", "T9")])
    with pytest.raises(InputFormatError, match="neither arg1/arg2 nor args"):
        binary_relations([{"type": "OR"}])


def test_span_ids_are_kept_or_filled_without_clashing():
    spans = (Span(0, 1, "A", id="T2"), Span(2, 3, "B"), Span(4, 5, "C"))
    assert [s.id for s in with_span_ids(spans)] == ["T2", "T1", "T3"]


def test_edit_counts_a_retype_once():
    spans = _spans()
    pre = relation_keys(spans, [rel("Has_value", "T1", "T2"), rel("Has_value", "T3", "T4"), rel("AND", "T3", "T5")])
    final = relation_keys(spans, [rel("Has_value", "T1", "T2"), rel("OR", "T3", "T5"), rel("Has_value", "T1", "T4")])
    assert relation_edits(pre, final) == {
        "relations_kept": 1,
        "relations_added": 1,
        "relations_deleted": 1,
        "relations_changed_type": 1,
    }
    summary = full_edit_summary(spans, [rel("AND", "T3", "T5")], spans, [rel("OR", "T3", "T5")])
    assert summary["total"] == 1 and summary["accepted"] == 5
    assert add_summaries([summary, summary])["relations_changed_type"] == 2
    assert "relations_kept" not in add_summaries([{"total": 1}])  # span-only summaries stay as they were


def _key_sets():
    args = st.sampled_from([(0, 5, "Measurement"), (6, 10, "Value"), (15, 18, "Measurement"), (27, 35, "Condition")])
    keys = st.tuples(args, args, st.sampled_from(["Has_value", "AND", "OR"])).filter(lambda k: k[0] != k[1])
    return st.sets(keys, max_size=8)


@settings(max_examples=200, deadline=None)
@given(_key_sets(), _key_sets())
def test_edit_counts_add_up(pre, final):
    e = relation_edits(pre, final)
    assert e["relations_kept"] + e["relations_deleted"] + e["relations_changed_type"] == len(pre)
    assert e["relations_kept"] + e["relations_added"] + e["relations_changed_type"] == len(final)
    assert min(e.values()) >= 0


@settings(max_examples=200, deadline=None)
@given(_key_sets(), _key_sets())
def test_relation_f1_is_symmetric_and_bounded(a, b):
    ab, ba = relation_prf(a, b)["all"], relation_prf(b, a)["all"]
    assert ab.f1 == pytest.approx(ba.f1) and 0.0 <= ab.f1 <= 1.0
    assert relation_prf(a, a)["all"].f1 == 1.0


def test_agreement_pools_pairs_and_reports_per_type():
    spans = _spans()
    k = lambda *rels: relation_keys(spans, list(rels))  # noqa: E731
    by_note = {
        "n1": {
            "ann": k(rel("Has_value", "T1", "T2"), rel("Has_value", "T3", "T4")),
            "bob": k(rel("Has_value", "T1", "T2")),
        },
        "n2": {"ann": set(), "bob": set()},  # nobody linked: left out, not a perfect score
    }
    out = relation_agreement(by_note)
    assert out["relation_f1"] == pytest.approx(2 / 3) and out["pairs"] == 1
    assert out["per_type"]["Has_value"]["f1"] == pytest.approx(2 / 3)
    assert relation_agreement({"n2": by_note["n2"]})["relation_f1"] is None


def test_agree_report_and_consensus_carry_relations():
    labels = load_rows(
        [
            row("ann", [rel("Has_value", "T1", "T2"), rel("OR", "T3", "T5")]),
            row("bob", [rel("Has_value", "T1", "T2"), rel("OR", "T5", "T3")]),  # OR is undirected: the same link
            row("cat", [rel("Has_value", "T3", "T4")]),
        ]
    )
    report = agreement_report(labels, n_boot=0)
    assert report["overall"]["relation_f1"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert set(report["relations"]["per_type"]) == {"Has_value", "OR"}
    gold = consensus_relations(labels, consensus_spans(labels))["n1"]
    spans, links = gold
    keys = relation_keys(spans, links, frozenset({"OR"}))
    assert {(h[2], t[2], kind) for h, t, kind in keys} == {
        ("Measurement", "Value", "Has_value"),
        ("Measurement", "Condition", "OR"),
    }
    assert len(keys) == 2  # Has_value BMI->30 had one vote of three


def test_consensus_without_links_keeps_spans_unchanged():
    labels = load_rows([row("ann", []), row("bob", [])])
    spans = consensus_spans(labels)
    assert consensus_relations(labels, spans)["n1"] == (tuple(spans["n1"]), [])
    assert "relations" not in agreement_report(labels, n_boot=0)


def test_relation_disagreement_sends_the_note_to_the_expert():
    labels = load_rows([row("ann", [rel("Has_value", "T1", "T2")]), row("bob", [rel("Has_value", "T1", "T4")])])
    (candidate,) = text_candidates(labels)
    assert candidate.scores["relation_f1"] == 0.0
    assert any(r.startswith("relation_f1 0.000") for r in queue_reasons(candidate, AgreementThresholds(), set()))


def test_rows_with_a_relation_to_a_missing_span_are_refused():
    with pytest.raises(InputFormatError, match="annotator 'ann'.*unknown span"):
        load_rows([row("ann", [rel("Has_value", "T1", "T8")])])


def test_majority_needs_more_than_half_and_relations_for_drops_missing_args():
    spans = _spans()
    one = relation_keys(spans, [rel("Has_value", "T1", "T2")])
    assert majority_relations({"a": one, "b": set()}) == set()  # a tie is not a majority
    assert majority_relations({"a": one, "b": one, "c": set()}) == one
    assert relations_for(spans[2:], one) == []


def test_schema_rules_name_the_problem():
    schema = load_label_schema()
    spans = _spans()
    assert relation_problems(spans, [rel("Has_value", "T1", "T2"), rel("AND", "T5", "T1")], schema) == []
    (problem,) = relation_problems(spans, [rel("Has_value", "T2", "T1")], schema)
    assert "Has_value from Value '> 7%'" in problem and "not allowed" in problem
    (problem,) = relation_problems(spans, [rel("Causes", "T1", "T2")], schema)
    assert "'Causes' is not in the label schema" in problem
    assert schema.relation("OR").allows("Value", "Condition") and not schema.relation("Has_value").allows(
        "Value", "Measurement"
    )


def test_the_caller_says_which_types_are_undirected():
    rows = [row("ann", [rel("OR", "T3", "T5")]), row("bob", [rel("OR", "T5", "T3")])]
    assert agreement_report(load_rows(rows, undirected=frozenset({"OR"})), n_boot=0)["overall"]["relation_f1"] == 1.0
    assert agreement_report(load_rows(rows, undirected=frozenset()), n_boot=0)["overall"]["relation_f1"] == 0.0
