"""Distance ranks of a row's spans, shared by its candidate pairs (the relation model's rank features)."""

from __future__ import annotations

from test_relations import _row

from clinical_nlp.models.relation_ranks import SpanRanks
from clinical_nlp.models.relations import candidates, features


def _span(sid: str, start: int, end: int, label: str) -> dict:
    return {"id": sid, "start": start, "end": end, "label": label}


V1, C1, C2, V2 = (
    _span("v1", 0, 2, "Value"),
    _span("c1", 5, 10, "Condition"),
    _span("c2", 20, 25, "Condition"),
    _span("v2", 30, 32, "Value"),
)
ALLOWED = {("Condition", "Value")}


def test_a_head_is_ranked_by_distance_overall_and_on_its_side():
    ranks = SpanRanks([V1, C1, C2, V2], ALLOWED)
    # v1's possible heads: c1 (3 characters away, to its right), then c2 (18, right)
    assert ranks.rank_features(C1, V1, "Condition>Value") == [
        "head_rank=0|Value",
        "side_rank=R0|Value",
        "mod_rank=0|Condition>Value",  # v1 is the Value nearest c1 (v2 is 20 characters away)
    ]
    # v2's heads: c2 (5 away, left) then c1 (20 away, left): c1 second overall and on its side
    assert ranks.rank_features(C1, V2, "Condition>Value") == [
        "head_rank=1|Value",
        "side_rank=L1|Value",
        "mod_rank=1|Condition>Value",
    ]
    assert ranks.is_nearest(C1, V1) and not ranks.is_nearest(C1, V2) and ranks.is_nearest(V2, C2)
    assert not ranks.is_nearest(C1, C1)  # a span is never its own nearest


def test_a_single_head_and_a_single_span_of_a_label_give_no_rank():
    ranks = SpanRanks([V1, C1], ALLOWED)
    assert ranks.rank_features(C1, V1, "Condition>Value") == []
    assert ranks.is_nearest(C1, V1) and ranks.is_nearest(V1, C1)


def test_ties_go_to_the_span_listed_first_and_heads_before_the_modifier_first():
    left, right = _span("l", 0, 2, "Condition"), _span("r", 9, 11, "Condition")
    value = _span("v", 5, 6, "Value")  # 3 characters from each
    ranks = SpanRanks([right, value, left], ALLOWED)
    assert ranks.rank_features(left, value, "p")[:2] == ["head_rank=0|Value", "side_rank=L0|Value"]
    assert ranks.rank_features(right, value, "p")[:2] == ["head_rank=1|Value", "side_rank=R0|Value"]
    assert ranks.is_nearest(value, right)  # tie on distance: the first listed


def test_shared_ranks_give_every_pair_the_features_of_fresh_ones():
    row = _row(3)
    spans = row["spans"]
    allowed = {("Measurement", "Value"), ("Measurement", "Measurement")}
    shared = SpanRanks(spans, allowed)
    for a, b in candidates(row, allowed):
        assert features(row, a, b, spans, allowed, shared) == features(row, a, b, spans, allowed)
