"""Exports: every format round-trips Chia spans (overlapping + discontinuous) where it can; manifest contents."""

from __future__ import annotations

import json

import pytest

from clinical_nlp.errors import ClinicalNLPError, InputFormatError
from clinical_nlp.export import export_corpus, patient_of, read_hf_dataset, split_by_patient
from clinical_nlp.io.jsonl import read_jsonl
from clinical_nlp.io.registry import read_corpus


@pytest.fixture(scope="module")
def chia(corpora_dir):
    return read_jsonl(corpora_dir / "chia" / "dev.jsonl", allow_empty=True)


def _keys(docs, with_fragments=True):
    return {
        d.id: sorted((s.start, s.end, s.label, s.fragments if with_fragments else None) for s in d.spans) for d in docs
    }


def _reread(fmt, out, split):
    if fmt == "hf":
        return read_hf_dataset(out / "dataset")[split]
    path = {
        "jsonl": f"{split}.jsonl",
        "docbin": f"{split}.spacy",
        "brat": split,
        "parquet": f"{split}.parquet",
        "conll": f"{split}.conll",
    }[fmt]
    return read_corpus(out / path, "dataframe" if fmt == "parquet" else fmt, allow_empty=True)


def test_fixture_has_overlaps_and_discontinuous(chia):
    assert any(s.fragments for d in chia for s in d.spans)
    assert any(a.start < b.end and b.start < a.end for d in chia for a in d.spans for b in d.spans if a is not b)


@pytest.mark.parametrize("fmt", ["jsonl", "docbin", "brat", "hf", "parquet"])
def test_lossless_formats_round_trip(chia, tmp_path, fmt):
    out = tmp_path / fmt
    manifest = export_corpus(chia, out, fmt)
    back = []
    for split in manifest["splits"]:
        back += _reread(fmt, out, split)
    assert _keys(back) == _keys(chia)
    assert {d.id: d.text for d in back} == {d.id: d.text for d in chia}


def test_conll_is_lossy_and_says_so(chia, tmp_path):
    # CoNLL/BIO keeps one label per token: overlapping spans are reduced to the longest,
    # discontinuous spans to their outer bounds, attributes are dropped.
    manifest = export_corpus(chia, tmp_path / "c", "conll")
    assert any("overlapping" in d for d in manifest["dropped"])
    assert any("discontinuous" in d for d in manifest["dropped"])
    back = read_corpus(tmp_path / "c" / "train.conll", "conll") + read_corpus(tmp_path / "c" / "dev.conll", "conll")
    n_back = sum(len(d.spans) for d in back)
    assert 0 < n_back < manifest["spans"]
    assert not any(s.fragments for d in back for s in d.spans)
    # the manifest counts what the files lost, read back with the format's own reader
    check = manifest["read_back"]
    assert check["spans_lost"] == sum(check["spans_lost_by_label"].values()) > 0
    assert check["spans_lost"] - check["spans_added"] == manifest["spans"] - n_back
    assert check["documents_missing"] == 0 and check["texts_changed"] == 0


@pytest.mark.parametrize("fmt", ["jsonl", "docbin", "brat", "hf", "parquet"])
def test_lossless_formats_read_back_whole(chia, tmp_path, fmt):
    check = export_corpus(chia, tmp_path / fmt, fmt)["read_back"]
    assert {k: v for k, v in check.items() if v} == {}, check


def test_read_back_counts_each_kind_of_loss():
    from clinical_nlp.export_check import compare, summary
    from clinical_nlp.types import AnnotatedNote, Note, Span

    text = "no chest pain today"
    pain = Span(3, 13, "Condition", id="T1", attributes={"negation": "negated"})
    today = Span(14, 19, "Temporal", id="T2")
    docs = [
        AnnotatedNote(
            Note("a", text, {"patient": "p1"}), (pain, today), ({"type": "Has_temporal", "arg1": "T1", "arg2": "T2"},)
        ),
        AnnotatedNote(Note("b", "fever"), (Span(0, 5, "Condition"),)),
    ]
    back = {"a": AnnotatedNote(Note("a", text), (Span(3, 13, "Condition"), Span(3, 8, "Condition")))}
    check = compare(docs, back)
    assert check == {
        "documents_missing": 1,
        "texts_changed": 0,
        "documents_with_metadata_lost": 1,
        "spans_lost": 2,
        "spans_lost_by_label": {"Condition": 1, "Temporal": 1},
        "spans_added": 1,
        "spans_with_attributes_lost": 1,
        "links_lost": 1,
    }
    assert "1 documents missing" in summary(check) and "1 relation links lost" in summary(check)
    assert summary(compare(docs, {d.id: d for d in docs})) == ""


def test_manifest_contents(chia, tmp_path):
    m = export_corpus(chia, tmp_path / "j", "jsonl", guideline_version="1.0.0+abc", model_versions=["m@1"])
    on_disk = json.loads((tmp_path / "j" / "manifest.json").read_text())
    assert on_disk == m
    assert m["documents"] == len(chia) == sum(m["splits"].values())
    assert sum(m["labels"].values()) == m["spans"] == sum(len(d.spans) for d in chia)
    assert set(m["files"]) == {"train.jsonl", "dev.jsonl"}
    assert m["guideline_version"] == "1.0.0+abc" and m["model_versions"] == ["m@1"]
    assert len(m["content_hash"]) == 64
    # deterministic: same input, same hashes
    m2 = export_corpus(chia, tmp_path / "j2", "jsonl", guideline_version="1.0.0+abc", model_versions=["m@1"])
    assert m2["content_hash"] == m["content_hash"]


def test_split_by_patient_no_leak(chia):
    train, dev = split_by_patient(chia, 0.3)
    assert dev and train
    assert not {patient_of(d.note) for d in train} & {patient_of(d.note) for d in dev}
    assert len(train) + len(dev) == len(chia)


def test_bad_inputs(chia, tmp_path):
    with pytest.raises(InputFormatError, match="unknown export format"):
        export_corpus(chia, tmp_path / "x", "xml")
    with pytest.raises(InputFormatError, match="nothing to export"):
        export_corpus([], tmp_path / "y", "jsonl")
    (tmp_path / "exists").mkdir()
    with pytest.raises(ClinicalNLPError, match="already exists"):
        export_corpus(chia, tmp_path / "exists", "jsonl")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_unknown_labels_refused_dropped_with_their_links_or_kept():
    from clinical_nlp.export import _unknown_labels
    from clinical_nlp.types import AnnotatedNote, Note, Span

    doc = AnnotatedNote(
        Note("a", "no pain"),
        (Span(0, 2, "Cue", id="T1"), Span(3, 7, "Condition", id="T2")),
        ({"type": "Has_negation", "arg1": "T2", "arg2": "T1"}, {"type": "OR", "args": ["T2", "T2"]}),
    )
    with pytest.raises(InputFormatError, match=r"document 'a': span \[0, 2\) has label 'Cue'"):
        _unknown_labels([doc], ["Condition"], "refuse", source="f.jsonl")
    (dropped,), counts = _unknown_labels([doc], ["Condition"], "drop", source="f.jsonl")
    assert counts == {"Cue": 1} and [s.label for s in dropped.spans] == ["Condition"]
    assert dropped.relations == ({"type": "OR", "args": ["T2", "T2"]},)
    assert _unknown_labels([doc], ["Condition"], "keep", source="f.jsonl") == ([doc], {"Cue": 1})
    with pytest.raises(InputFormatError, match="unknown-labels must be one of"):
        _unknown_labels([doc], ["Condition"], "ignore", source="f.jsonl")
