"""Unit and property tests of the corpus formats (BRAT, CoNLL, DocBin, Doccano, DataFrame, registry)."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clinical_nlp.errors import InputFormatError, OffsetMismatchError
from clinical_nlp.io.brat import read_brat, write_brat
from clinical_nlp.io.conll import read_conll, resolve_overlaps, tokenize, write_conll
from clinical_nlp.io.dataframe import from_dataframe, read_dataframe, to_dataframe, write_dataframe
from clinical_nlp.io.docbin import read_docbin, write_docbin
from clinical_nlp.io.doccano_jsonl import read_doccano_jsonl, write_doccano_jsonl
from clinical_nlp.io.jsonl import read_jsonl, write_jsonl
from clinical_nlp.io.registry import detect_format, read_corpus, write_corpus
from clinical_nlp.types import AnnotatedNote, Note, Span

TEXT = "No fever or chills.\nHistory of stage 4 chronic kidney disease; mother had  asthma."


def _at(word: str, nth: int = 0) -> tuple[int, int]:
    start = -1
    for _ in range(nth + 1):
        start = TEXT.index(word, start + 1)
    return start, start + len(word)


def _doc() -> AnnotatedNote:
    fever, chills, asthma = _at("fever"), _at("chills"), _at("asthma")
    stage, kidney, ckd = _at("stage 4"), _at("kidney disease"), _at("chronic kidney disease")
    spans = (
        Span(*fever, "Condition", "fever", {"negation": "negated"}, id="T1"),
        Span(*chills, "Condition", "chills", {"negation": "negated"}, id="T2"),
        Span(stage[0], kidney[1], "Condition", "stage 4 kidney disease", fragments=(stage, kidney), id="T3"),
        Span(*ckd, "Condition", "chronic kidney disease", {"temporality": "historical"}, id="T4"),
        Span(*asthma, "Condition", "asthma", {"experiencer": "family"}, id="T5"),
    )
    return AnnotatedNote(
        Note("d1", TEXT, {"patient": "p1", "date": "2024-01-02"}),
        spans,
        (
            {"id": "R1", "type": "Has_temporal", "arg1": "T1", "arg2": "T2"},
            {"id": "*0", "type": "OR", "args": ["T1", "T2", "T5"]},
        ),
    )


def test_fixture_offsets_are_right():
    doc = _doc().verified()
    assert [s.text for s in doc.spans][0] == "fever"
    assert doc.spans[2].text == "stage 4 kidney disease"


# --- BRAT -----------------------------------------------------------------------------------
def test_brat_round_trip_keeps_fragments_attributes_relations(tmp_path):
    doc = _doc()
    write_brat([doc], tmp_path / "b")
    ann = (tmp_path / "b" / "d1.ann").read_text()
    (a, b), (c, d) = _at("stage 4"), _at("kidney disease")
    assert f"T3\tCondition {a} {b};{c} {d}\tstage 4 kidney disease" in ann
    assert "A1\tNegation T1 negated" in ann
    assert "*\tOR T1 T2 T5" in ann
    assert read_brat(tmp_path / "b") == [doc]


def test_brat_reads_plain_files_and_flag_attributes(tmp_path):
    (tmp_path / "n.txt").write_text("Denies chest pain.")
    (tmp_path / "n.ann").write_text("T1\tCondition 7 17\tchest pain\nA1\tNegated T1\n#1\tAnnotatorNotes T1\tok\n")
    [doc] = read_brat(tmp_path)
    assert doc.id == "n" and doc.spans[0].negation == "negated" and doc.spans[0].text == "chest pain"


def test_brat_offset_mismatch_names_file_line_and_span(tmp_path):
    (tmp_path / "n.txt").write_text("Denies chest pain.")
    (tmp_path / "n.ann").write_text("T1\tCondition 0 4\tDeni\nT2\tCondition 7 17\tchest rain\n")
    with pytest.raises(OffsetMismatchError) as err:
        read_brat(tmp_path)
    msg = str(err.value)
    assert "n.ann:2" in msg and "T2" in msg and "'n'" in msg


@pytest.mark.parametrize(
    "line,needle",
    [
        ("T1\tCondition x y\tchest", "malformed offsets"),
        ("R1\tRel Arg1:T1", "malformed relation"),
        ("A1\tNegation T9 negated", "unknown span T9"),
        ("Q1\twhat", "unknown annotation line"),
    ],
)
def test_brat_malformed_lines(tmp_path, line, needle):
    (tmp_path / "n.txt").write_text("Denies chest pain.")
    (tmp_path / "n.ann").write_text("T1\tCondition 7 17\tchest pain\n" + line + "\n")
    with pytest.raises(InputFormatError, match=needle):
        read_brat(tmp_path)


def test_brat_invalid_utf8_and_empty_text(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"ok\nbad \xff byte")
    with pytest.raises(InputFormatError, match=r"a.txt:2: not valid UTF-8"):
        read_brat(tmp_path)
    (tmp_path / "a.txt").write_text("   ")
    with pytest.raises(InputFormatError, match="'a': empty text"):
        read_brat(tmp_path)


def test_brat_writer_leaves_nothing_on_error(tmp_path):
    bad = AnnotatedNote(Note("x", "a b"), (Span(0, 1, "Two words"),))
    with pytest.raises(InputFormatError, match="whitespace"):
        write_brat([_doc(), bad], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# --- CoNLL ------------------------------------------------------------------------------------
def test_tokenize_keeps_offsets():
    for a, b, tok in tokenize(TEXT):
        assert TEXT[a:b] == tok
    assert tokenize("a-b") == [(0, 1, "a"), (1, 2, "-"), (2, 3, "b")]


def test_conll_refuses_overlaps_by_default(tmp_path):
    with pytest.raises(InputFormatError, match=r"'d1'.*overlap"):
        write_conll([_doc()], tmp_path / "x.conll")
    assert not (tmp_path / "x.conll").exists()


def test_conll_longest_policy_round_trip(tmp_path):
    doc = _doc()
    write_conll([doc], tmp_path / "x.conll", overlap="longest")
    [back] = read_conll(tmp_path / "x.conll")
    assert back.text == doc.text and back.id == "d1"
    kept = resolve_overlaps(doc, "longest")
    assert [(s.start, s.end, s.label) for s in back.spans] == [(s.start, s.end, s.label) for s in kept]
    assert (_at("stage 4")[0], _at("kidney disease")[1]) in [(s.start, s.end) for s in back.spans]


def test_conll_plain_two_columns(tmp_path):
    (tmp_path / "p.bio").write_text("-DOCSTART-\nNo O\nchest B-Condition\npain I-Condition\n\n")
    [doc] = read_conll(tmp_path / "p.bio")
    assert doc.text == "No chest pain" and doc.spans[0].text == "chest pain"


def test_conll_bad_tag_and_mismatched_token(tmp_path):
    (tmp_path / "p.conll").write_text('# doc_id = a\n# text = "No pain"\nNo\t0\t2\tX-Cond\n')
    with pytest.raises(InputFormatError, match=r"p.conll:3.*bad BIO tag"):
        read_conll(tmp_path / "p.conll")
    (tmp_path / "p.conll").write_text('# doc_id = a\n# text = "No pain"\nNo\t0\t2\tO\nrain\t3\t7\tO\n')
    with pytest.raises(InputFormatError, match=r"p.conll:4.*'rain'"):
        read_conll(tmp_path / "p.conll")


# --- DocBin ----------------------------------------------------------------------------------
def test_docbin_lossless_and_spacy_views(tmp_path):
    import spacy
    from spacy.tokens import DocBin

    doc = _doc()
    write_docbin([doc], tmp_path / "x.spacy")
    assert read_docbin(tmp_path / "x.spacy") == [doc]
    [sdoc] = DocBin().from_disk(tmp_path / "x.spacy").get_docs(spacy.blank("en").vocab)
    assert sdoc.text == TEXT
    assert len(sdoc.spans["clinical_nlp"]) == 5
    ents = [(e.start_char, e.end_char) for e in sdoc.ents]
    assert all(a2 >= b1 for (_, b1), (a2, _) in zip(ents, ents[1:]))  # non-overlapping
    assert _at("asthma") in ents


def test_docbin_garbage(tmp_path):
    (tmp_path / "x.spacy").write_bytes(b"not a docbin")
    with pytest.raises(InputFormatError, match="x.spacy: not a spaCy DocBin"):
        read_docbin(tmp_path / "x.spacy")


# --- Doccano ---------------------------------------------------------------------------------
def test_doccano_attribute_labels(tmp_path):
    doc = _doc()
    write_doccano_jsonl([doc], tmp_path / "d.jsonl")
    row = json.loads((tmp_path / "d.jsonl").read_text())
    assert [*_at("fever"), "NEG"] in row["label"]
    assert [*_at("asthma"), "FAM"] in row["label"]
    assert row["note_id"] == "d1" and row["patient"] == "p1"
    [back] = read_doccano_jsonl(tmp_path / "d.jsonl")
    want = [(s.start, s.end, s.label, dict(s.attributes)) for s in doc.spans]
    assert [(s.start, s.end, s.label, dict(s.attributes)) for s in back.spans] == want
    assert back.note.metadata == doc.note.metadata


def test_doccano_entities_layout_and_orphan_attribute(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(
        json.dumps(
            {"id": 7, "text": "No pain", "entities": [{"start_offset": 3, "end_offset": 7, "label": "Condition"}]}
        )
        + "\n"
    )
    [doc] = read_doccano_jsonl(p)
    assert doc.id == "7" and doc.spans[0].text == "pain"
    p.write_text(json.dumps({"text": "No pain", "label": [[0, 2, "negation:negated"]]}) + "\n")
    with pytest.raises(InputFormatError, match=r"d.jsonl:1.*negation:negated at \[0, 2\) has no entity"):
        read_doccano_jsonl(p)
    p.write_text(json.dumps({"text": "No pain", "label": [[3, 9, "Condition"]]}) + "\n")
    with pytest.raises(OffsetMismatchError, match=r"d.jsonl:1.*ends beyond"):
        read_doccano_jsonl(p)


# --- DataFrame -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_dataframe_files(tmp_path, name):
    docs = [_doc(), AnnotatedNote(Note("empty-spans", "Nothing here."))]
    df = to_dataframe(docs)
    assert len(df) == 6 and list(df["doc_id"]).count("d1") == 5
    write_dataframe(docs, tmp_path / name)
    assert read_dataframe(tmp_path / name) == docs


def test_dataframe_missing_column():
    import pandas as pd

    with pytest.raises(InputFormatError, match="lacks column"):
        from_dataframe(pd.DataFrame({"doc_id": ["a"], "start": [0]}))
    with pytest.raises(InputFormatError, match="needs an 'id' and a 'text' column"):
        from_dataframe(pd.DataFrame({"doc_id": ["a"]}))  # no span columns: a table of notes, without text


# --- registry --------------------------------------------------------------------------------
def test_detect_format(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "x", "label": []}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "1", "text": "x", "spans": []}) + "\n")
    assert detect_format(tmp_path / "a.jsonl") == "doccano"
    assert detect_format(tmp_path / "b.jsonl") == "jsonl"
    assert detect_format(tmp_path / "c.spacy", for_output=True) == "docbin"
    assert detect_format(tmp_path / "outdir", for_output=True) == "brat"
    with pytest.raises(InputFormatError, match="extension"):
        detect_format(tmp_path / "x.weird")
    with pytest.raises(InputFormatError, match="unknown corpus format"):
        read_corpus(tmp_path / "b.jsonl", "xml")
    with pytest.raises(InputFormatError, match="not written"):
        write_corpus([], tmp_path / "z.json", "fhir")


# --- property tests --------------------------------------------------------------------------
LABELS = st.sampled_from(["Condition", "Drug", "Value"])
ATTRS = st.dictionaries(
    st.sampled_from(["negation", "temporality", "experiencer"]),
    st.sampled_from(["negated", "historical", "family", "possible"]),
    max_size=2,
)
ALPHABET = string.ascii_letters + string.digits + " .,;-\n\t" + "éü→"


@st.composite
def annotated_docs(draw, max_spans: int = 6):
    text = draw(st.text(alphabet=ALPHABET, min_size=1, max_size=80).filter(lambda t: t.strip()))
    spans = []
    for k in range(draw(st.integers(0, max_spans))):
        a = draw(st.integers(0, len(text) - 1))
        b = draw(st.integers(a + 1, len(text)))
        frags = None
        if b - a >= 3 and draw(st.booleans()):
            m = draw(st.integers(a + 1, b - 2))
            frags = ((a, m), (m + 1, b))
        spans.append(Span(a, b, draw(LABELS), attributes=draw(ATTRS), fragments=frags, id=f"T{k + 1}"))
    return AnnotatedNote(
        Note(draw(st.sampled_from(["n1", "doc-2", "x_3"])), text, {"patient": draw(st.sampled_from(["p1", "p2"]))}),
        tuple(spans),
    ).verified()


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(annotated_docs())
def test_property_jsonl_round_trip(tmp_path, doc):
    write_jsonl(tmp_path / "x.jsonl", [doc])
    assert read_jsonl(tmp_path / "x.jsonl") == [doc]


@FAST
@given(annotated_docs())
@example(
    AnnotatedNote(
        Note("nl", "x\ny\tz w"),
        (Span(0, 5, "L", "x\ny\tz", id="T1"), Span(0, 7, "L", "x\ny w", fragments=((0, 3), (6, 7)), id="T2")),
    )
)
def test_property_brat_round_trip(tmp_path, doc):
    import shutil

    out = tmp_path / "brat"
    shutil.rmtree(out, ignore_errors=True)
    write_brat([doc], out)
    assert read_brat(out) == [doc]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(annotated_docs())
def test_property_docbin_round_trip(tmp_path, doc):
    write_docbin([doc], tmp_path / "x.spacy")
    assert read_docbin(tmp_path / "x.spacy") == [doc]


@FAST
@given(st.lists(annotated_docs(), min_size=1, max_size=3, unique_by=lambda d: d.id))
def test_property_dataframe_round_trip(docs):
    assert from_dataframe(to_dataframe(docs)) == docs
