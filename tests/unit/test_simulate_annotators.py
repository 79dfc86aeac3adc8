"""Simulated annotators: skill knobs do what they say; the direct loop with a fake model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.errors import ConfigError, InputFormatError
from clinical_nlp.simulate import (
    PERFECT,
    AnnotatorSkill,
    SimulatedAnnotator,
    annotate,
    count_edits,
    restrict_labels,
    simulate_active_learning,
    without_texts_of,
)
from clinical_nlp.types import AnnotatedNote, Note, Span

try:
    from .test_active_fakes import memorizer_train_fn
except ImportError:
    from test_active_fakes import memorizer_train_fn

WORDS = ["fever", "cough", "aspirin", "no", "pain", "mri", "chest", "daily", "rash", "x"]
LABELS = ["Condition", "Drug", "Procedure"]


def _doc(i: int, rng: np.random.Generator) -> AnnotatedNote:
    words = [WORDS[int(k)] for k in rng.integers(0, len(WORDS), size=int(rng.integers(3, 12)))]
    text = " ".join(words)
    spans, pos = [], 0
    for w in words:
        if rng.random() < 0.5:
            spans.append(
                Span(
                    pos,
                    pos + len(w),
                    LABELS[WORDS.index(w) % 3],
                    w,
                    {"negation": "negated"} if rng.random() < 0.3 else {},
                )
            )
        pos += len(w) + 1
    return AnnotatedNote(Note(f"d{i}", text), tuple(spans))


def _corpus(n: int, seed: int = 0) -> list[AnnotatedNote]:
    rng = np.random.default_rng(seed)
    return [_doc(i, rng) for i in range(n)]


def _key(s: Span):
    return (s.start, s.end, s.label, tuple(sorted(s.attributes.items())))


def test_perfect_skill_reproduces_gold_whatever_the_pre():
    for doc in _corpus(30):
        pre = (Span(0, 1, "Drug", doc.text[0]),) + doc.spans[:1]
        got = annotate(doc, pre, np.random.default_rng(0), PERFECT)
        assert sorted(map(_key, got)) == sorted(map(_key, doc.spans))


def test_skill_validation_and_levels():
    with pytest.raises(ConfigError, match="miss_rate"):
        AnnotatorSkill(miss_rate=1.5)
    assert AnnotatorSkill.from_level(1.0).is_perfect
    assert AnnotatorSkill.from_level(0.6).miss_rate == pytest.approx(0.2)
    with pytest.raises(ConfigError):
        AnnotatorSkill.from_level(-0.1)


def _rate(skill: AnnotatorSkill, measure) -> float:
    docs = _corpus(400, seed=1)
    rng = np.random.default_rng(7)
    hits = total = 0
    for d in docs:
        got = annotate(d, (), rng, skill, labels=LABELS)
        h, t = measure(d, got)
        hits += h
        total += t
    return hits / total


def test_flip_rate_matches_configuration():
    def flipped(d, got):
        by_pos = {(s.start, s.end): s for s in got}
        return sum(by_pos[(g.start, g.end)].negation != g.negation for g in d.spans), len(d.spans)

    assert _rate(AnnotatorSkill(negation_flip=0.2), flipped) == pytest.approx(0.2, abs=0.04)
    assert _rate(AnnotatorSkill(), flipped) == 0


def test_miss_rate_matches_configuration_and_pre_annotated_spans_are_kept():
    def kept(d, got):
        return len(got), len(d.spans)

    assert 1 - _rate(AnnotatorSkill(miss_rate=0.3), kept) == pytest.approx(0.3, abs=0.04)
    doc = _corpus(1, seed=3)[0]
    got = annotate(doc, doc.spans, np.random.default_rng(0), AnnotatorSkill(miss_rate=1.0))
    assert sorted(map(_key, got)) == sorted(map(_key, doc.spans))


def test_wrong_label_and_boundary_errors():
    def relabelled(d, got):
        g = {(s.start, s.end): s.label for s in d.spans}
        return sum(g[(s.start, s.end)] != s.label for s in got), len(d.spans)

    assert _rate(AnnotatorSkill(wrong_label=0.25), relabelled) == pytest.approx(0.25, abs=0.04)

    def moved(d, got):
        gold = {(s.start, s.end) for s in d.spans}
        for s in got:  # still a valid span over the text
            assert d.text[s.start : s.end] == s.text and s.text.strip() == s.text
        return sum((s.start, s.end) not in gold for s in got), len(d.spans)

    rate = _rate(AnnotatorSkill(boundary_error=0.3), moved)
    assert 0.2 < rate <= 0.32  # single-word spans in one-word notes cannot move


def test_keep_wrong_pre():
    doc = AnnotatedNote(Note("n", "fever and rash"), (Span(0, 5, "Condition", "fever"),))
    wrong = (Span(10, 14, "Drug", "rash", score=0.7),)
    assert len(annotate(doc, wrong, np.random.default_rng(0), AnnotatorSkill(keep_wrong_pre=1.0))) == 2
    assert len(annotate(doc, wrong, np.random.default_rng(0), AnnotatorSkill(keep_wrong_pre=0.0))) == 1


def test_annotator_is_deterministic_by_seed_and_item():
    skill = AnnotatorSkill.from_level(0.5)
    doc = _corpus(5, seed=4)[2]
    a = SimulatedAnnotator("ann1", skill, seed=3)
    assert a.annotate(doc, ()) == a.annotate(doc, ())
    assert all(s.source == "ann1" for s in a.annotate(doc, ()))
    outs = {tuple(map(_key, SimulatedAnnotator("ann1", skill, seed=s).annotate(doc, ()))) for s in range(10)}
    assert len(outs) > 1


def test_count_edits_uses_shared_summary():
    gold = (Span(0, 5, "Condition", "fever"), Span(10, 14, "Condition", "rash"))
    assert count_edits(gold, gold) == 0
    assert count_edits((), gold) == 2
    assert count_edits((Span(0, 4, "Condition"), Span(20, 22, "Drug")), gold) == 3  # boundary, delete, add


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), level=st.floats(0, 1))
def test_property_output_spans_are_valid(seed, level):
    doc = _corpus(1, seed=seed)[0]
    got = annotate(doc, (), np.random.default_rng(seed), AnnotatorSkill.from_level(level), labels=LABELS)
    assert len(got) <= len(doc.spans)
    for s in got:
        assert 0 <= s.start < s.end <= len(doc.text)
        assert s.label in LABELS
    assert list(got) == sorted(got, key=lambda s: (s.start, s.end, s.label))


def test_loop_with_fake_model_schema_monotone_and_deterministic():
    pool, ev = _corpus(40, seed=5), _corpus(15, seed=6)
    run = lambda strategy, seed=0: simulate_active_learning(  # noqa: E731
        pool, ev, strategy, rounds=3, batch=5, seed=seed, train_fn=memorizer_train_fn(LABELS), progress=False
    )
    curve = run("entropy")
    assert curve["strategy"] == "entropy.v1"
    pts = curve["points"]
    assert [p["round"] for p in pts] == [0, 1, 2, 3]
    assert [p["n_docs"] for p in pts] == [5, 10, 15, 20]
    assert all(a["edits"] <= b["edits"] for a, b in zip(pts, pts[1:]))
    # round 0: nothing pre-annotated, so every gold span of the seed batch is an added edit
    assert pts[0]["edits"] == pts[0]["edit_breakdown"]["added"] > 0
    assert all(0.0 <= p["f1"] <= 1.0 for p in pts)
    assert pts[-1]["f1"] > 0.5  # the memorizer learns this tiny vocabulary quickly
    untimed = lambda c: [{k: v for k, v in p.items() if not k.endswith("seconds")} for p in c["points"]]  # noqa: E731
    assert untimed(run("entropy")) == untimed(curve)
    assert untimed(run("random", 1)) == untimed(run("random", 1))
    committee = run("committee")
    assert committee["points"][-1]["n_docs"] == 20


def test_committee_members_train_on_annotations_without_moving_the_warm_start_base():
    pool, ev = _corpus(30, seed=7), _corpus(10, seed=8)
    base = memorizer_train_fn(LABELS)
    main_sizes: list[int] = []
    member_docs: list[list[AnnotatedNote]] = []

    def train(docs, seed):
        main_sizes.append(len(docs))
        return base(docs, seed)

    def member(docs, seed):
        member_docs.append(list(docs))
        return base(docs, seed)

    train.member = member
    curve = simulate_active_learning(
        pool,
        ev,
        "committee",
        rounds=2,
        batch=5,
        seed=0,
        train_fn=train,
        skill=AnnotatorSkill(miss_rate=0.6),
        progress=False,
    )
    assert [p["n_docs"] for p in curve["points"]] == [5, 10, 15]
    assert main_sizes == [5, 10, 15]  # the loop's model only: members went to ``member``
    assert len(member_docs) == 2 * 3  # 3 members in each of the 2 query rounds
    gold = {d.id: d.spans for d in pool}
    # members learn from what the (noisy) annotator submitted, never from the gold
    assert any(d.spans != gold[d.id] for docs in member_docs for d in docs)
    assert all(len(d.spans) <= len(gold[d.id]) for docs in member_docs for d in docs)


def test_pool_notes_with_an_evaluation_text_never_reach_the_loop():
    pool, ev = _corpus(12, seed=5), _corpus(4, seed=6)
    leaked = [replace(d, note=replace(d.note, id=f"copy{i}", text=d.text + "  ")) for i, d in enumerate(ev[:3])]
    seen: list[str] = []

    def train(docs, seed):
        seen.extend(d.text.strip() for d in docs)
        return memorizer_train_fn(LABELS)(docs, seed)

    curve = simulate_active_learning(pool + leaked, ev, "random", rounds=2, batch=20, train_fn=train, progress=False)
    assert curve["pool_notes_dropped_as_in_eval"] == 3 + len({d.text for d in pool} & {d.text for d in ev})
    assert not set(seen) & {d.text for d in ev}
    assert without_texts_of(leaked, ev) == []


def test_loop_input_errors():
    pool = _corpus(5)
    with pytest.raises(InputFormatError, match="no documents"):
        simulate_active_learning([], pool, "random", rounds=1, batch=2, train_fn=memorizer_train_fn(LABELS))
    with pytest.raises(InputFormatError, match="labels"):
        simulate_active_learning(
            pool, pool, "random", rounds=1, batch=2, labels=["Nope"], train_fn=memorizer_train_fn(LABELS)
        )
    with pytest.raises(ConfigError, match="batch"):
        simulate_active_learning(pool, pool, "random", rounds=1, batch=0, train_fn=memorizer_train_fn(LABELS))
    with pytest.raises(InputFormatError, match="every pool note's text is also in the evaluation set"):
        simulate_active_learning(pool, pool, "random", rounds=1, batch=2, train_fn=memorizer_train_fn(LABELS))
    assert all(s.label == "Drug" for d in restrict_labels(pool, ["Drug"]) for s in d.spans)
