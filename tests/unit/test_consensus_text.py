"""Text adapter, aggregation and the adjudication queue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clinical_nlp.annotators import Annotator, Registry
from clinical_nlp.audit import AuditLog
from clinical_nlp.consensus import aggregate, validate_frame
from clinical_nlp.consensus.adapters.text import (
    agreement_report,
    align_units,
    consensus_spans,
    load_rows,
    read_labels,
    text_candidates,
    tied_units,
)
from clinical_nlp.consensus.adjudication import AdjudicationError
from clinical_nlp.consensus.agreement import ConsensusError
from clinical_nlp.errors import InputFormatError, OffsetMismatchError, PolicyError
from clinical_nlp.services.adjudication import add_missing_notes, build_queue, decide, decisions, entries, pending
from clinical_nlp.store import Store

TEXT = "No fever. Cough since 2 days. Mother has asthma."


def row(ann, spans, nid="n1", text=TEXT):
    return {"id": nid, "annotator": ann, "text": text, "spans": spans}


def S(start, end, label="Condition", **attrs):
    return {"start": start, "end": end, "label": label, **attrs}


def test_identical_annotators_score_one():
    spans = [S(3, 8, negation="negated"), S(10, 15), S(42, 48, experiencer="family")]
    rep = agreement_report(load_rows([row("a", spans), row("b", spans)]))
    assert rep["overall"]["span_f1_exact"] == 1.0 and rep["overall"]["span_f1_overlap"] == 1.0
    assert rep["labels"]["Condition"]["span_f1_exact"] == 1.0
    assert rep["attributes"]["negation"]["cohen_kappa"] == 1.0
    assert rep["attributes"]["negation"]["krippendorff_alpha"] == 1.0
    # a single category: undefined with a reason, never a crash
    assert rep["attributes"]["temporality"]["cohen_kappa"] is None
    assert "single category" in rep["attributes"]["temporality"]["cohen_kappa_reason"]


def test_boundary_disagreement_exact_vs_overlap_and_defaults():
    a = [S(3, 8, negation="negated"), S(10, 15)]
    b = [S(3, 8), S(10, 14)]  # missing negation = affirmed
    rep = agreement_report(load_rows([row("a", a), row("b", b)]))
    assert rep["overall"]["span_f1_exact"] == pytest.approx(0.5)
    assert rep["overall"]["span_f1_overlap"] == 1.0
    neg = rep["attributes"]["negation"]
    assert neg["n"] == 1 and neg["cohen_kappa"] == 0.0  # the one shared span disagrees on negation


def test_micro_over_corpus_then_mean_over_pairs():
    rows = [
        row("a", [S(3, 8)]),
        row("b", [S(3, 8)]),
        row("c", []),
        row("a", [S(0, 7, "Drug")], "n2", "Aspirin 81 mg."),
        row("b", [], "n2", "Aspirin 81 mg."),
        row("c", [S(0, 7, "Drug")], "n2", "Aspirin 81 mg."),
    ]
    rep = agreement_report(load_rows(rows))
    f1 = {(p["a"], p["b"]): p["span_exact"]["f1"] for p in rep["pairs"]}
    assert f1[("a", "b")] == pytest.approx(2 / 3) and f1[("a", "c")] == pytest.approx(2 / 3)
    assert f1[("b", "c")] == 0.0
    assert rep["overall"]["span_f1_exact"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_one_annotator_is_reported_not_crashing():
    rep = agreement_report(load_rows([row("a", [S(3, 8)])]))
    assert rep["overall"]["span_f1_exact"] is None and "two or more" in rep["overall"]["reason"]
    assert rep["attributes"]["negation"]["cohen_kappa"] is None


def test_units_align_overlapping_spans_and_consensus():
    rows = [row("a", [S(10, 15)]), row("b", [S(10, 14)]), row("c", [S(10, 15), S(42, 48)])]
    labels = load_rows(rows)
    units = align_units(labels)
    assert [u["unit"] for u in units] == ["10-15", "42-48"]
    gold = consensus_spans(labels)["n1"]
    assert [(s.start, s.end) for s in gold] == [(10, 15)]  # 42-48 has 1 of 3 votes
    assert [(s.start, s.end) for s in consensus_spans(labels, method="dawid_skene")["n1"]] == [(10, 15)]
    labelled = load_rows([row("a", [S(10, 15, "Drug")]), row("b", [S(10, 15)]), row("c", [S(10, 14)])])
    only = consensus_spans(labelled)["n1"]
    assert [(s.start, s.label) for s in only] == [(10, "Condition")]  # Condition 2 votes vs Drug 1


@pytest.mark.parametrize(
    "bad,match",
    [
        (row("a", [S(3, 80)]), "beyond the text"),
        (row("a", [{"start": 3, "label": "Condition"}]), "misses field"),
        ({"id": "n1", "text": TEXT}, "annotator"),
    ],
)
def test_bad_rows_name_the_problem(bad, match):
    with pytest.raises(InputFormatError, match=match):
        load_rows([bad])


def test_read_labels_errors_name_file_and_line(tmp_path):
    p = tmp_path / "LABELS.jsonl"
    p.write_text('{"id": "n1", "annotator": "a", "text": "abc", "spans": []}\n{oops\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"LABELS.jsonl:2"):
        read_labels(p)
    p.write_text("", encoding="utf-8")
    with pytest.raises(InputFormatError, match="empty"):
        read_labels(p)
    p.write_bytes(b'{"id": "n1", "annotator": "a", "text": "\xff"}\n')
    with pytest.raises(InputFormatError, match="UTF-8"):
        read_labels(p)
    p.write_text(
        '{"id": "n1", "annotator": "a", "text": "abc", "spans": [{"start": 0, "end": 2, '
        '"label": "X", "text": "zz"}]}\n',
        encoding="utf-8",
    )
    with pytest.raises(OffsetMismatchError, match=r"LABELS.jsonl:1"):
        read_labels(p)


def test_frame_contract_errors():
    with pytest.raises(ConsensusError, match="missing column"):
        validate_frame(pd.DataFrame({"item": [1]}))
    dup = pd.DataFrame({"item": ["i", "i"], "annotator": ["a", "a"], "unit": ["u", "u"], "label": [1, 2]})
    with pytest.raises(ConsensusError, match="more than once"):
        validate_frame(dup)


def _simulated(n_items=400, skills=(0.9, 0.8, 0.55, 0.35, 0.35), k=3, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    rows = []
    for w, s in enumerate(skills):
        correct = rng.random(n_items) < s
        noise = (truth + rng.integers(1, k, n_items)) % k
        lab = np.where(correct, truth, noise)
        rows += [{"item": f"i{i}", "annotator": f"w{w}", "unit": "u", "label": int(v)} for i, v in enumerate(lab)]
    return pd.DataFrame(rows), truth


def test_majority_vote_and_dawid_skene_recover_skills():
    df, truth = _simulated()
    mv, ds = aggregate(df, method="majority"), aggregate(df, method="dawid_skene")
    acc = {}
    for agg in (mv, ds):
        pred = np.array([agg.result.loc[(f"i{i}", "u")] for i in range(len(truth))]).astype(int)
        acc[agg.method] = (pred == truth).mean()
    assert acc["dawid_skene"] >= acc["majority"] > 0.6
    rel = ds.reliability
    assert rel["w0"] > rel["w2"] > rel["w3"]
    assert abs(rel["w0"] - 0.9) < 0.08
    with pytest.raises(ConsensusError, match="unknown aggregation"):
        aggregate(df, method="nope")  # type: ignore[arg-type]


def test_adjudication_queue_roundtrip():
    store = Store("sqlite:///:memory:")
    rows = [
        row("a", [S(3, 8, negation="negated")]),
        row("b", [S(3, 9)]),
        row("a", [S(0, 3, "Procedure")], "n2", "ECG done."),
        row("b", [S(0, 3, "Procedure")], "n2", "ECG done."),
        row("a", [S(0, 7, "Drug")], "n3", "Aspirin."),
        row("b", [S(0, 7, "Drug")], "n3", "Aspirin."),
    ]
    labels = load_rows(rows)
    add_missing_notes(store, labels.texts, source="rows")
    n = build_queue(store, text_candidates(labels), expert="dr_x")
    queued = {e.item: e for e in pending(store)}
    assert n == 2 and set(queued) == {"n1", "n3"}  # n2 agrees and is not safety-critical
    assert any("span_f1" in r for r in queued["n1"].reasons)
    assert any("safety-critical" in r for r in queued["n3"].reasons)
    with pytest.raises(AdjudicationError, match="assigned to"):
        decide(store, "n1", "*", [S(3, 8, negation="negated")], "someone_else", "why")
    with pytest.raises(AdjudicationError, match="reason"):
        decide(store, "n1", "*", [], "dr_x", "  ")
    with pytest.raises(PolicyError, match="'dr_x' is not registered"):
        decide(store, "n1", "*", [S(3, 8, negation="negated")], "dr_x", "why")
    Registry(store).add(Annotator("dr_x", "expert", license_id="MD-1", guideline_version="g1"))
    with pytest.raises(PolicyError, match="lacks qualifications for Condition: guideline_training"):
        decide(store, "n1", "*", [S(3, 8)], "dr_x", "why", guideline_version="g2")
    with pytest.raises(InputFormatError, match="ends beyond the text"):
        decide(store, "n1", "*", [S(3, 800)], "dr_x", "why", guideline_version="g1")
    assert pending(store)[0].item == "n1"  # refused decisions change nothing
    decide(
        store, "n1", "*", [S(3, 8, negation="negated")], "dr_x", "guideline 4.1: 'No' negates", guideline_version="g1"
    )
    gold = store.annotations(kind="gold", item="n1")
    assert len(gold) == 1 and gold[0].annotator == "dr_x" and gold[0].spans[0].negation == "negated"
    assert gold[0].edits["reason"].startswith("guideline")
    assert [e.item for e in pending(store)] == ["n3"]
    assert next(e for e in entries(store) if e.item == "n1").decided_by == "dr_x"
    assert gold[0].spans[0].text == TEXT[3:8] and gold[0].guideline_version == "g1"
    decide(store, "n1", "*", [], "dr_x", "on reflection: no finding", guideline_version="g1")  # amends
    gold = store.annotations(kind="gold", item="n1")
    assert len(gold) == 1 and gold[0].spans == ()
    history = decisions(store, "n1")
    assert [h["reason"] for h in history] == ["guideline 4.1: 'No' negates", "on reflection: no finding"]
    assert history[1]["supersedes"] == history[0]["id"]
    with pytest.raises(AdjudicationError, match="not in the adjudication queue"):
        decide(store, "zzz", "*", [], "dr_x", "x")
    log = AuditLog(store)
    assert any(e.details.get("item") == "n1" for e in log.entries("adjudicate"))
    # rebuilding keeps decided entries decided
    build_queue(store, text_candidates(labels), expert="dr_x")
    assert [e.item for e in pending(store)] == ["n3"]


LONG = " ".join(f"finding{i}" for i in range(12))


def _many(n_spans, label="Condition"):
    return [S(i * 9, i * 9 + 8, label) for i in range(n_spans)]


def test_two_annotators_who_differ_on_one_unit_go_to_the_expert():
    """Ten agreed spans and one that only one annotator marked: span F1 0.95 passes the bar, consensus
    drops the span (1 of 2 votes), so the tie itself must queue the note."""
    a, b = _many(11), _many(10)
    labels = load_rows([row("a", a, "n1", LONG), row("b", b, "n1", LONG)])
    (cand,) = list(text_candidates(labels))
    assert cand.scores["span_f1"] > 0.8 and cand.scores["tied_units"] == 1.0
    assert tied_units(labels, "n1") == ["90-98"]
    assert len(consensus_spans(labels)["n1"]) == 10  # what the queue protects against
    store = Store("sqlite:///:memory:")
    add_missing_notes(store, labels.texts, source="rows")
    build_queue(store, text_candidates(labels))
    (entry,) = pending(store)
    assert any("without a majority" in r for r in entry.reasons)


@pytest.mark.parametrize(
    ("span_b", "why"),
    [
        (S(0, 8, "Procedure"), "label"),
        (S(0, 7), "boundaries"),
        (S(0, 8, negation="negated"), "attribute"),
        (S(0, 8, experiencer="family"), "attribute"),
    ],
)
def test_ties_on_label_boundaries_and_attributes(span_b, why):
    labels = load_rows([row("a", [S(0, 8)], "n1", LONG), row("b", [span_b], "n1", LONG)])
    assert tied_units(labels, "n1") == ["0-8"], why


def test_a_strict_majority_is_not_a_tie():
    three = [row(x, [S(0, 8)], "n1", LONG) for x in ("a", "b")] + [row("c", [S(0, 8, negation="negated")], "n1", LONG)]
    assert tied_units(load_rows(three), "n1") == []
    agreed = load_rows([row(x, [S(0, 8)], "n1", LONG) for x in ("a", "b")])
    assert tied_units(agreed, "n1") == [] and next(iter(text_candidates(agreed))).scores["tied_units"] == 0.0
