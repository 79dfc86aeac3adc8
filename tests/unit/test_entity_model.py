"""Entity models: span policy, decoding, training both kinds on tiny data, save/load, registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_nlp.config import load_guideline
from clinical_nlp.errors import ConfigError, InputFormatError
from clinical_nlp.models.entities import (
    DEFAULT_LABELS,
    ModelError,
    TrainConfig,
    bio_tags,
    data_hash,
    decode_spans,
    evaluate_entity_model,
    fine_token_offsets,
    list_models,
    load_entity_model,
    project_piece_probs,
    tidy_boundaries,
    train_committee,
    train_entity_model,
    training_spans,
    viterbi_bio,
)
from clinical_nlp.store import ModelVersionRow, Store
from clinical_nlp.types import AnnotatedNote, Note, Span


def _doc(i: int, text: str, spans: list[tuple[int, int, str]]) -> AnnotatedNote:
    return AnnotatedNote(Note(f"d{i}", text), tuple(Span(a, b, lab, text[a:b]) for a, b, lab in spans))


TEXTS = [
    ("No history of diabetes or asthma.", [(0, 2, "Negation"), (14, 22, "Condition"), (26, 32, "Condition")]),
    ("Taking aspirin 81 mg daily.", [(7, 14, "Drug"), (15, 20, "Value")]),
    ("HbA1c > 7% within 3 months.", [(0, 5, "Measurement"), (6, 10, "Value"), (11, 26, "Temporal")]),
    ("No prior chemotherapy.", [(0, 2, "Negation"), (9, 21, "Procedure")]),
    ("Diabetes treated with insulin.", [(0, 8, "Condition"), (22, 29, "Drug")]),
    ("No asthma; taking aspirin.", [(0, 2, "Negation"), (3, 9, "Condition"), (18, 25, "Drug")]),
]
DOCS = [_doc(i, t, s) for i, (t, s) in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def spacy_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "spacy_v1"
    cfg = TrainConfig(
        kind="spacy",
        epochs=25,
        batch_size=2,
        patience=0,
        width=64,
        depth=2,
        spacy_ner=True,
        tokenizer="fine",
        split_lines=True,
    )
    return train_entity_model(DOCS * 3, DOCS, cfg, out, progress=False)


# --- span policy -------------------------------------------------------------
def test_policy_overlap_keeps_longest_and_discontinuous_uses_outer_bounds():
    text = "severe chronic kidney disease and pain"
    spans = (
        Span(0, 28, "Condition", text[0:28]),
        Span(15, 28, "Condition", text[15:28]),  # nested: dropped
        Span(7, 14, "Observation", text[7:14]),  # overlaps the longest: dropped
        Span(0, 38, "Condition", fragments=((0, 6), (33, 38))),  # discontinuous -> [0, 38) outer bounds
        Span(29, 32, "Qualifier", "and"),  # label not trained
    )
    kept = training_spans(AnnotatedNote(Note("x", text), spans), DEFAULT_LABELS)
    assert kept == [(0, 38, "Condition")]
    kept2 = training_spans(AnnotatedNote(Note("x", text), spans[:3]), DEFAULT_LABELS)
    assert kept2 == [(0, 28, "Condition")]


def test_policy_tie_prefers_label_listed_first():
    text = "aspirin"
    spans = (Span(0, 7, "Drug", text), Span(0, 7, "Condition", text))
    assert training_spans(AnnotatedNote(Note("x", text), spans), ("Drug", "Condition")) == [(0, 7, "Drug")]
    assert training_spans(AnnotatedNote(Note("x", text), spans), ("Condition", "Drug")) == [(0, 7, "Condition")]


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 10), st.sampled_from(DEFAULT_LABELS)), max_size=12))
@settings(max_examples=60, deadline=None)
def test_policy_output_never_overlaps(raw):
    text = "x" * 45
    spans = tuple(Span(a, a + n, lab, text[a : a + n]) for a, n, lab in raw)
    kept = training_spans(AnnotatedNote(Note("h", text), spans), DEFAULT_LABELS)
    for (_a0, b0, _), (a1, _b1, _) in zip(kept, kept[1:]):
        assert b0 <= a1
    assert len(kept) <= len(spans)


def test_fine_tokenizer_splits_punctuation_and_digits():
    text = "HbA1c<7%/day (x-ray)"
    toks = [text[a:b] for a, b in fine_token_offsets(text)]
    assert toks == ["HbA", "1", "c", "<", "7", "%", "/", "day", "(", "x", "-", "ray", ")"]


# --- decoding ----------------------------------------------------------------
@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
@settings(max_examples=60, deadline=None)
def test_viterbi_returns_valid_bio(n, seed):
    tags = bio_tags(("A", "B"))
    probs = np.random.default_rng(seed).dirichlet(np.ones(len(tags)), size=n)
    path = [tags[i] for i in viterbi_bio(probs, tags)]
    prev = "O"
    for tag in path:
        if tag.startswith("I-"):
            assert prev in (f"B-{tag[2:]}", f"I-{tag[2:]}")
        prev = tag


def _valid(path: tuple[str, ...]) -> bool:
    prev = "O"
    for tag in path:
        if tag.startswith("I-") and prev not in (f"B-{tag[2:]}", f"I-{tag[2:]}"):
            return False
        prev = tag
    return True


@given(st.integers(1, 5), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_viterbi_finds_the_most_probable_valid_path(n, seed):
    """Brute force over every tag sequence of a short note: Viterbi's path is the best valid one."""
    import itertools

    tags = bio_tags(("A",))
    probs = np.random.default_rng(seed).dirichlet(np.ones(len(tags)) * 0.5, size=n)
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    best = max(
        (seq for seq in itertools.product(range(len(tags)), repeat=n) if _valid(tuple(tags[i] for i in seq))),
        key=lambda seq: sum(logp[t, i] for t, i in enumerate(seq)),
    )
    got = viterbi_bio(probs, tags)
    assert sum(logp[t, i] for t, i in enumerate(got)) == pytest.approx(sum(logp[t, i] for t, i in enumerate(best)))


@given(st.lists(st.integers(0, 30), min_size=1, max_size=70), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_batched_viterbi_gives_each_note_its_own_path(lengths, seed):
    """Decoding notes of different lengths together (padding, groups) changes no note's path."""
    from clinical_nlp.models.entities.decode import viterbi_bio_batch

    tags = bio_tags(("A", "B"))
    rng = np.random.default_rng(seed)
    probs = [rng.dirichlet(np.ones(len(tags)) * 0.3, size=n) for n in lengths]
    assert viterbi_bio_batch(probs, tags) == [viterbi_bio_batch([p], tags)[0] for p in probs]


def test_decode_spans_repairs_and_scores():
    tags = bio_tags(("Drug",))
    text = "take aspirin now"
    offsets = fine_token_offsets(text)
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.9, 0.05, 0.05]])  # I- without B-: repaired
    spans = decode_spans(text, offsets, probs, tags, "model:x@1")
    assert [(s.start, s.end, s.label, s.text) for s in spans] == [(5, 12, "Drug", "aspirin")]
    assert 0.0 < spans[0].score <= 1.0 and spans[0].source == "model:x@1"


# --- spaCy kind ----------------------------------------------------------------
def test_spacy_model_learns_tiny_data(spacy_model):
    result = evaluate_entity_model(spacy_model, DOCS)
    assert result["strict"]["micro"]["f1"] >= 0.6
    spans = spacy_model.predict([Note("q", "No history of diabetes.")])[0]
    assert spans and all(s.source == spacy_model.source for s in spans)
    assert all(0.0 <= s.score <= 1.0 for s in spans)


def test_spacy_ner_decoder_and_choice(spacy_model):
    assert spacy_model.meta["decoder"] in ("ner", "tagger")
    assert "ner" in spacy_model.nlp.pipe_names
    best = spacy_model.metrics["history"][spacy_model.metrics["best_epoch"] - 1]
    assert best["decoder"] == spacy_model.meta["decoder"]
    assert best["dev_strict_f1"] == max(best["dev_strict_f1_ner"], best["dev_strict_f1_tagger"])
    saved = spacy_model.meta["decoder"]
    try:
        spacy_model.meta["decoder"] = "ner"
        for spans in spacy_model.predict([d.note for d in DOCS]):
            for s in spans:
                assert s.label in DEFAULT_LABELS and 0.0 <= s.score <= 1.0 and s.end > s.start
    finally:
        spacy_model.meta["decoder"] = saved


def test_tagger_only_pipeline(tmp_path):
    cfg = TrainConfig(epochs=3, spacy_ner=False, width=32, depth=1)
    model = train_entity_model(DOCS, DOCS, cfg, tmp_path / "t", progress=False)
    assert model.nlp.pipe_names == ["tagger"] and model.meta["decoder"] == "tagger"
    assert load_entity_model(tmp_path / "t").predict([DOCS[0].note]) == model.predict([DOCS[0].note])


def test_spacy_model_dir_contents(spacy_model):
    meta = json.loads((spacy_model.path / "model.json").read_text())
    metrics = json.loads((spacy_model.path / "metrics.json").read_text())
    assert meta["kind"] == "spacy" and meta["labels"] == list(DEFAULT_LABELS)
    assert meta["data_hash"] == data_hash(DOCS * 3, DEFAULT_LABELS)
    assert meta["guideline_version"] == load_guideline().version
    assert meta["parent_version"] is None and meta["version"] == spacy_model.version
    assert set(metrics["dev"]["strict"]["per_label"]) <= set(DEFAULT_LABELS)
    assert 0.0 <= metrics["dev"]["strict"]["micro"]["f1"] <= 1.0
    assert metrics["history"] and metrics["history"][0]["epoch"] == 1


def test_spacy_save_load_round_trip(spacy_model, tmp_path):
    notes = [d.note for d in DOCS]
    loaded = load_entity_model(spacy_model.path)
    assert loaded.version == spacy_model.version
    assert loaded.predict(notes) == spacy_model.predict(notes)
    copy = loaded.save(tmp_path / "copy")
    assert load_entity_model(copy).predict(notes) == spacy_model.predict(notes)


def test_spacy_token_probabilities_and_mc_dropout(spacy_model):
    notes = [d.note for d in DOCS[:3]] + [Note("empty", "")]
    probs = spacy_model.token_probabilities(notes)
    offsets = spacy_model.token_offsets(notes)
    for p, off in zip(probs, offsets):
        assert p.shape == (len(off), len(spacy_model.tags))
        assert np.allclose(p.sum(axis=1), 1.0)
    mc = spacy_model.token_probabilities(notes, mc_dropout=3)
    assert all(np.allclose(m.sum(axis=1), 1.0) for m in mc if len(m))
    assert any(not np.allclose(m, p) for m, p in zip(mc, probs) if len(m))


def test_the_tagger_multiplies_through_numpy_with_blis_arithmetic(spacy_model):
    from thinc.api import NumpyOps

    loaded = load_entity_model(spacy_model.path)
    tagger = loaded.nlp.get_pipe("tagger").model
    assert all(isinstance(n.ops, NumpyOps) and not n.ops.use_blis for n in tagger.walk())
    notes = [d.note for d in DOCS]
    fast = loaded.token_probabilities(notes)
    blis = NumpyOps(use_blis=True)
    for node in tagger.walk():
        node.ops = blis
    for a, b in zip(fast, loaded.token_probabilities(notes), strict=True):
        assert np.abs(a - b).max(initial=0.0) < 1e-5


def test_warm_start_records_parent_and_store(spacy_model, tmp_path):
    store = Store("sqlite:///" + str(tmp_path / "state.db"))
    cfg = TrainConfig(kind="spacy", epochs=2, base_model=spacy_model.path, patience=0)
    child = train_entity_model(DOCS, DOCS, cfg, tmp_path / "models" / "v2", store=store, progress=False)
    assert child.meta["parent_version"] == spacy_model.version
    with store.session() as s:
        row = s.get(ModelVersionRow, child.version)
        assert row is not None and row.parent == spacy_model.version and row.kind == "entities-spacy"
    listed = list_models(tmp_path / "models", store)
    assert [r["version"] for r in listed] == [child.version]
    assert listed[0]["registered"] is True and listed[0]["dev_strict_f1"] is not None


def test_committee_uses_distinct_seeds():
    members = train_committee(DOCS, None, TrainConfig(epochs=2, width=32, depth=1, spacy_ner=False), n_members=2)
    assert len(members) == 2 and members[0].version != members[1].version
    assert [m.meta["config"]["seed"] for m in members] == [0, 1]


# --- transformer kind ------------------------------------------------------------
def test_transformer_trains_saves_and_reloads(tmp_path):
    cfg = TrainConfig(kind="transformer", epochs=1, max_steps=2, batch_size=4, max_length=32, stride=8)
    model = train_entity_model(DOCS, DOCS[:2], cfg, tmp_path / "tf", progress=False)
    assert model.metrics["history"] and (tmp_path / "tf" / "transformer").is_dir()
    notes = [d.note for d in DOCS] + [Note("long", " ".join(["aspirin daily"] * 40))]
    loaded = load_entity_model(tmp_path / "tf")
    assert loaded.kind == "transformer"
    assert loaded.predict(notes) == model.predict(notes)
    probs = loaded.token_probabilities(notes)
    assert all(np.allclose(p.sum(axis=1), 1.0) for p in probs)
    offs = loaded.token_offsets(notes)
    assert probs[-1].shape[0] == len(offs[-1]) > 32  # long note covered by several windows
    mc = loaded.token_probabilities(notes[:2], mc_dropout=2)
    assert mc[0].shape == probs[0].shape


# --- ensemble kind ---------------------------------------------------------------
def test_project_piece_probs_maps_b_to_i_inside_a_piece_and_marks_gaps():
    tags = bio_tags(["Drug"])  # O, B-Drug, I-Drug
    pieces = [(0, 3), (3, 6), (7, 9)]  # "asp" "irin" | "xx"
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05]])
    tokens = [(0, 6), (1, 3), (7, 9), (10, 12)]
    out = project_piece_probs(pieces, probs, tokens, tags)
    assert np.allclose(out[0], probs[0])  # first piece of the token, starting with it
    assert np.allclose(out[1], [0.1, 0.0, 0.9])  # token starts inside a piece: B mass moved to I
    assert np.allclose(out[2], probs[2])
    assert np.isnan(out[3]).all()  # no piece overlaps: caller falls back to the other model


@pytest.mark.slow
def test_ensemble_trains_saves_reloads_and_mixes(tmp_path):
    cfg = TrainConfig(
        kind="ensemble",
        epochs=3,
        batch_size=2,
        patience=0,
        width=64,
        depth=2,
        transformer_epochs=1,
        max_steps=2,
        max_length=32,
        stride=8,
    )
    model = train_entity_model(DOCS, DOCS[:3], cfg, tmp_path / "ens", progress=False)
    assert model.kind == "ensemble" and 0.3 <= model.weight <= 0.8
    assert "weight_search" in model.metrics["history"]
    loaded = load_entity_model(tmp_path / "ens")
    assert loaded.kind == "ensemble" and loaded.weight == model.weight
    notes = [d.note for d in DOCS]
    assert loaded.predict(notes) == model.predict(notes)
    probs = loaded.token_probabilities(notes)
    assert all(np.allclose(p.sum(axis=1), 1.0) for p in probs)
    assert [p.shape[0] for p in probs] == [len(o) for o in loaded.token_offsets(notes)]
    assert all(s.source.startswith("model:entities-ensemble@") for spans in loaded.predict(notes) for s in spans)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("bowel obstruction or", "bowel obstruction"),
        ("<or=10 &", "<or=10"),
        ("ALT)", "ALT"),
        ("Body mass index (BMI)", "Body mass index (BMI)"),
        ("and hepatitis B", "hepatitis B"),
        ("x", "x"),
        ("or", "or"),
        (">40 mIU/mL.", ">40 mIU/mL"),
    ],
)
def test_tidy_boundaries_trims_coordination_leftovers(text, expected):
    a, b = tidy_boundaries("  " + text + " more", 2, 2 + len(text))
    assert ("  " + text)[a:b] == expected


# --- bad input -----------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(InputFormatError, match="no documents"):
        train_entity_model([AnnotatedNote(Note("e", ""))], None, TrainConfig(), progress=False)
    with pytest.raises(ConfigError, match="kind"):
        TrainConfig(kind="crf")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ModelError, match="model.json"):
        load_entity_model(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "keep.txt").write_text("x")
    model = train_entity_model(DOCS, None, TrainConfig(epochs=1, width=32, depth=1, spacy_ner=False), progress=False)
    with pytest.raises(ModelError, match="refusing"):
        model.save(tmp_path / "junk")
    assert (tmp_path / "junk" / "keep.txt").exists()


def test_embed_mean_pooling_shapes_and_similarity():
    from clinical_nlp.models.embeddings import embed

    vecs = embed([Note("a", "No fever or chills."), "no fever or chills", Note("e", ""), "insulin 10 units"])
    assert vecs.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vecs[[0, 1, 3]], axis=1), 1.0, atol=1e-4)
    assert np.allclose(vecs[2], 0.0)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[3]


def test_split_note_lines_keeps_spans_and_never_cuts_one():
    from clinical_nlp.models.entities import split_note_lines

    text = "No asthma\n\nTaking aspirin\nchronic\nkidney disease"
    spans = (Span(3, 9, "Condition", "asthma"), Span(18, 25, "Drug", "aspirin"), Span(26, 48, "Condition", text[26:48]))
    pieces = split_note_lines(AnnotatedNote(Note("n", text), spans))
    assert [p.text for p in pieces] == ["No asthma\n", "Taking aspirin\n", "chronic\nkidney disease"]
    got = [(s.label, p.text[s.start : s.end]) for p in pieces for s in p.spans]
    assert got == [("Condition", "asthma"), ("Drug", "aspirin"), ("Condition", "chronic\nkidney disease")]


def test_early_stopping_waits_until_the_dev_score_leaves_the_floor():
    from clinical_nlp.models.entities import BestEpoch

    stopper = BestEpoch(patience=2)
    for f1 in (0.006, 0.0, 0.0, 0.0, 0.01):  # not learning yet: no patience is spent
        stopper.update(f1, lambda: "snap")
        assert not stopper.exhausted
    stopper.update(0.31, lambda: "good")
    stopper.update(0.30, lambda: "x")
    assert not stopper.exhausted
    stopper.update(0.29, lambda: "x")
    assert stopper.exhausted and stopper.best == (0.31, "good")


# --- partially labelled notes (weak supervision: "an entity overlaps here") ----------------------
PARTIAL = [
    _doc(100 + i, t, [(t.index(w), t.index(w) + len(w), "Finding")])
    for i, (t, w) in enumerate([("No wheezes, rales or rhonchi.", "wheezes"), ("Mild wheezes heard.", "wheezes")] * 4)
]


def test_partial_examples_label_only_the_span_tokens():
    import spacy

    from clinical_nlp.models.entities.spacy_model import NOT_OUTSIDE, OUTSIDE, _partial_examples

    nlp = spacy.blank("en")
    (eg,) = _partial_examples(nlp, PARTIAL[:1] + [_doc(9, "no spans here", [])], DEFAULT_LABELS)
    assert eg.get_aligned("TAG", as_string=True) == ["", NOT_OUTSIDE, "", "", "", "", ""]  # not a model label
    known = _doc(10, "Mild left ventricular hypertrophy.", [(5, 33, "Condition")])
    (eg,) = _partial_examples(nlp, [known], DEFAULT_LABELS)
    assert eg.get_aligned("TAG", as_string=True) == ["", "B-Condition", "I-Condition", "I-Condition", ""]
    she = _doc(11, "She has fever.", [(8, 13, "Condition"), (0, 3, OUTSIDE), (4, 7, OUTSIDE)])
    (eg,) = _partial_examples(nlp, [she, _doc(12, "She has.", [(0, 3, OUTSIDE)])], DEFAULT_LABELS)
    assert eg.get_aligned("TAG", as_string=True) == ["O", "O", "B-Condition", ""]  # only-O notes are left out


def test_partial_notes_teach_the_tagger_where_an_entity_is(tmp_path):
    cfg = TrainConfig(epochs=8, patience=0, width=32, depth=1, batch_size=2, static_vectors=False)
    plain = train_entity_model(DOCS, None, cfg, progress=False)
    weak = train_entity_model(DOCS, None, cfg, tmp_path / "w", progress=False, partial=PARTIAL)
    probe = Note("q", "Some wheezes today.")

    def p_outside(model) -> float:
        return float(model.token_probabilities([probe])[0][1, 0])  # token "wheezes", tag O

    assert p_outside(weak) < 0.5 * p_outside(plain)
    meta = json.loads((tmp_path / "w" / "model.json").read_text())
    assert meta["n_partial_docs"] == len(PARTIAL) and meta["partial_hash"] == data_hash(PARTIAL)
    assert meta["data_hash"] == plain.meta["data_hash"]  # the fully labelled data is the same
    with pytest.raises(ConfigError, match="spaCy kind only"):
        train_entity_model(DOCS, None, TrainConfig(kind="transformer", epochs=1), progress=False, partial=PARTIAL)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=30), st.integers(1, 60))
def test_token_batches_keep_order_and_budget(lengths, budget):
    from clinical_nlp.models.entities.spacy_model import _token_batches

    groups = _token_batches(lengths, budget)
    assert [i for g in groups for i in g] == list(range(len(lengths)))
    assert all(g and (len(g) == 1 or sum(lengths[i] for i in g) <= budget) for g in groups)


def test_small_forward_batches_give_the_same_spans(spacy_model, monkeypatch):
    notes = [d.note for d in DOCS]
    whole = spacy_model.predict(notes)
    monkeypatch.setattr(type(spacy_model), "batch_tokens", 3)
    assert spacy_model.predict(notes) == whole
