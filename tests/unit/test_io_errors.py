"""Bad input in every readable format: a clear error naming the file and line (or document and span)."""

from __future__ import annotations

import json

import pytest

from clinical_nlp.errors import InputFormatError, OffsetMismatchError
from clinical_nlp.io._common import MAX_TEXT_CHARS
from clinical_nlp.io.registry import read_corpus, write_corpus
from clinical_nlp.types import AnnotatedNote, Note, Span

BAD_UTF8 = b"\xff\xfe broken"


@pytest.mark.parametrize(
    "name,fmt,content,needle",
    [
        (
            "a.jsonl",
            "jsonl",
            b'{"id": "1", "text": "ok"}\n{"id": "2", "text": "' + BAD_UTF8 + b'"}\n',
            r"a.jsonl:2: not valid UTF-8",
        ),
        ("a.jsonl", "doccano", b'{"text": "ok", "label": []}\n' + BAD_UTF8 + b"\n", r"a.jsonl:2: not valid UTF-8"),
        ("a.conll", "conll", b"-DOCSTART-\nok O\n" + BAD_UTF8 + b" O\n", r"a.conll:3: not valid UTF-8"),
        ("a.csv", "dataframe", b"doc_id,doc_text,start,end,label\n1," + BAD_UTF8 + b",,,\n", "a.csv.*UTF-8"),
        (
            "a.ndjson",
            "fhir",
            b'{"resourceType": "Patient", "id": "p"}\n' + BAD_UTF8 + b"\n",
            r"a.ndjson:2: not valid UTF-8",
        ),
    ],
)
def test_invalid_utf8(tmp_path, name, fmt, content, needle):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputFormatError, match=needle):
        read_corpus(p, fmt)


@pytest.mark.parametrize(
    "fmt,row,needle",
    [
        ("jsonl", {"id": "x", "text": "  "}, r"a.jsonl:1: row 'x': empty text"),
        ("jsonl", {"text": "hello"}, r"a.jsonl:1: row has no 'id'"),
        ("jsonl", {"id": "x"}, r"a.jsonl:1: row 'x' has no 'text'"),
        ("jsonl", {"id": "x", "text": "hello", "spans": [{"start": 0, "end": 2}]}, r"a.jsonl:1: span #0.*'label'"),
        (
            "jsonl",
            {"id": "x", "text": "hello", "spans": [{"start": 0, "end": 2, "label": "C", "text": "hx"}]},
            r"a.jsonl:1: span #0: document 'x': span 'C' \[0, 2\) covers 'he' but claims 'hx'",
        ),
        ("doccano", {"text": "", "label": []}, r"a.jsonl:1: .*empty text"),
        ("doccano", {"label": [[0, 1, "C"]]}, r"a.jsonl:1: .*has no 'text'"),
        ("doccano", {"text": "hello", "label": [[0, "x", "C"]]}, r"a.jsonl:1: .*non-integer offsets"),
        ("doccano", {"text": "hello", "label": [[0, 1]]}, r"a.jsonl:1: .*not \[start, end, label\]"),
    ],
)
def test_empty_missing_and_mismatched(tmp_path, fmt, row, needle):
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(InputFormatError, match=needle):
        read_corpus(p, fmt)


def test_mismatch_error_type(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps({"id": "x", "text": "hello", "spans": [{"start": 3, "end": 9, "label": "C"}]}) + "\n")
    with pytest.raises(OffsetMismatchError, match="ends beyond the text"):
        read_corpus(p)


def test_huge_text_rejected(tmp_path):
    p = tmp_path / "h.txt"
    p.write_text("a" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(InputFormatError, match="exceeds the limit"):
        read_corpus(tmp_path, "brat")


def test_missing_input_and_empty_folder(tmp_path):
    with pytest.raises(InputFormatError, match="file not found"):
        read_corpus(tmp_path / "nope.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFormatError, match="cannot tell the format"):
        read_corpus(tmp_path / "empty")
    with pytest.raises(InputFormatError, match="no .txt files"):
        read_corpus(tmp_path / "empty", "brat")


@pytest.mark.parametrize("name", ["o.jsonl", "o.spacy", "o.parquet", "o.conll"])
def test_failed_write_leaves_no_partial_file(tmp_path, name):
    good = AnnotatedNote(Note("a", "fine text"), (Span(0, 4, "C", "fine"),))

    def docs():
        yield good
        raise RuntimeError("source failed midway")

    with pytest.raises(RuntimeError):
        write_corpus(docs(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_brat_ann_without_its_text_is_refused(tmp_path):
    (tmp_path / "n1.txt").write_text("Pt has chest pain.\n")
    (tmp_path / "n1.ann").write_text("T1\tCondition 7 17\tchest pain\n")
    (tmp_path / "n2.ann").write_text("T1\tCondition 0 2\tPt\n")  # its n2.txt is missing
    with pytest.raises(InputFormatError, match=r"1 \.ann file\(s\) without a \.txt of the same name: n2\.ann"):
        read_corpus(tmp_path, "brat")
    (tmp_path / "n2.txt").write_text("Pt is well.\n")
    assert [d.note.id for d in read_corpus(tmp_path, "brat")] == ["n1", "n2"]


def test_utf8_byte_order_mark_is_accepted_in_jsonl_only_at_the_start(tmp_path):
    row = {"id": "a", "text": "chest pain", "spans": [{"start": 0, "end": 5, "label": "Condition"}]}
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(row).encode() + b"\n")
    (doc,) = read_corpus(p)
    assert doc.note.text == "chest pain" and doc.spans[0].text == "chest"
    p.write_bytes(json.dumps(row).encode() + b"\n\xef\xbb\xbf" + json.dumps(dict(row, id="b")).encode() + b"\n")
    with pytest.raises(InputFormatError, match="invalid JSON"):
        read_corpus(p)


def test_a_pulls_labels_file_given_as_a_corpus_says_what_to_train_on(tmp_path):
    """Before: only "duplicate id" for the file 'doccano pull' writes (a row per note and annotator)."""
    import json

    from clinical_nlp.io.jsonl import read_jsonl

    path = tmp_path / "labels.jsonl"
    path.write_text(
        "".join(json.dumps({"id": "n1", "annotator": a, "text": "No fever.", "spans": []}) + "\n" for a in "ab")
    )
    with pytest.raises(InputFormatError, match=r"labels.jsonl:2: duplicate id 'n1' .*a pull's labels file.*--gold"):
        read_jsonl(path)
