"""Span P/R/F1, exact and overlap, with property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.metrics import PRF, corpus_span_prf, match_spans, span_prf
from clinical_nlp.types import Span


def S(a, b, label="C", frags=None):
    return Span(a, b, label, fragments=frags)


def test_exact_and_overlap_counts():
    gold = [S(0, 5), S(10, 15), S(20, 25, "D")]
    pred = [S(0, 5), S(11, 15), S(30, 35, "D")]
    exact = span_prf(gold, pred, "exact")["__micro__"]
    assert (exact.tp, exact.fp, exact.fn) == (1, 2, 2)
    assert exact.precision == pytest.approx(1 / 3) and exact.recall == pytest.approx(1 / 3)
    overlap = span_prf(gold, pred, "overlap")
    assert (overlap["C"].tp, overlap["D"].fp, overlap["D"].fn) == (2, 1, 1)


def test_labels_must_match_and_one_to_one():
    assert match_spans([S(0, 5)], [S(0, 5, "D")], "exact") == []
    assert len(match_spans([S(0, 10)], [S(0, 4), S(5, 10)], "overlap")) == 1
    assert match_spans([S(0, 10)], [S(0, 4), S(2, 9)], "overlap") == [(0, 1)]  # largest overlap wins


def test_discontinuous_exact_needs_same_fragments():
    g = S(0, 10, frags=((0, 2), (6, 10)))
    assert span_prf([g], [S(0, 10)], "exact")["__micro__"].tp == 0
    assert span_prf([g], [S(0, 10, frags=((0, 2), (6, 10)))], "exact")["__micro__"].tp == 1
    assert span_prf([g], [S(3, 5)], "overlap")["__micro__"].tp == 0  # gap is not covered


def test_empty_and_corpus():
    assert PRF(0, 0, 0).f1 == 1.0 and PRF(0, 1, 0).precision == 0.0
    total = corpus_span_prf([[S(0, 2)], []], [[S(0, 2)], [S(1, 3)]])
    assert (total["__micro__"].tp, total["__micro__"].fp) == (1, 1)
    with pytest.raises(ValueError, match="2 documents"):
        corpus_span_prf([[], []], [[]])
    assert span_prf([S(0, 2), S(3, 4, "D")], [S(0, 2)], labels=["D"])["__micro__"].fn == 1


spans = st.lists(
    st.builds(lambda a, n, l: S(a, a + n, l), st.integers(0, 40), st.integers(1, 8), st.sampled_from(["C", "D"])),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(spans, spans, st.sampled_from(["exact", "overlap"]))
def test_property_bounded_identity_symmetric(gold, pred, mode):
    prf = span_prf(gold, pred, mode)["__micro__"]
    for value in (prf.precision, prf.recall, prf.f1):
        assert 0.0 <= value <= 1.0
    assert prf.tp + prf.fn == len(gold) and prf.tp + prf.fp == len(pred)
    assert span_prf(gold, gold, mode)["__micro__"].f1 == 1.0
    assert span_prf(pred, gold, mode)["__micro__"].f1 == pytest.approx(prf.f1)
