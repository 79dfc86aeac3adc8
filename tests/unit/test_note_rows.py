"""One reader of note rows (JSONL, CSV, Parquet) for every command, and preannotate's Parquet layout."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clinical_nlp.doccano.sync import read_preannotations
from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.dataframe import read_dataframe
from clinical_nlp.io.note_rows import iter_note_rows, parquet_record, table_row
from clinical_nlp.io.relation_rows import read_relation_rows

ROWS = [
    {"id": "a", "text": "Patient denies chest pain."},
    {"id": "b", "text": "Has fever and cough since Monday.", "patient": "p1", "tags": ["x", "y"]},
    {"id": "c", "text": "No rash.", "patient": 7, "visit": {"ward": "ICU"}},
]


def _jsonl(tmp_path, rows, name="notes.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(*args: object):
    from conftest import run_cli

    return run_cli([str(a) for a in args])


def test_table_row_decodes_json_columns_and_merges_metadata():
    row = table_row(
        {"doc_id": "n1", "doc_text": "No fever", "spans": '[{"start": 3, "end": 8, "label": "Condition"}]',
         "metadata": '{"patient": "007"}', "ward": "ICU", "empty": "", "gone": None},
        source="t.csv", line=2,
    )  # fmt: skip
    assert row == {
        "id": "n1",
        "text": "No fever",
        "spans": [{"start": 3, "end": 8, "label": "Condition"}],
        "patient": "007",
        "ward": "ICU",
    }
    with pytest.raises(InputFormatError, match=r"t.csv:4: column 'spans' is not JSON"):
        table_row({"id": "n1", "text": "x", "spans": "[{oops"}, source="t.csv", line=4)
    with pytest.raises(InputFormatError, match=r"column 'metadata' must hold a JSON object"):
        table_row({"id": "n1", "text": "x", "metadata": "[1, 2]"}, source="t.csv", line=4)


def test_parquet_record_reads_back_to_the_same_row():
    row = {**ROWS[2], "spans": [{"start": 3, "end": 7, "label": "Condition"}], "relations": [], "model_version": "m"}
    table = pa.Table.from_pylist([parquet_record(row)])
    assert table_row(table.to_pylist()[0], source="x", line=1) == row


def test_parquet_output_keeps_every_rows_metadata_across_partitions(tmp_path):
    """Before: the first partition's columns were the file's schema; 'patient' of later notes was dropped."""
    src = _jsonl(tmp_path, ROWS)
    out_j, out_p = tmp_path / "pre.jsonl", tmp_path / "pre.parquet"
    for out in (out_j, out_p):
        result = _run("preannotate", "-i", src, "-o", out, "--no-model", "--rules-only", "--partition-size", "1")
        assert result.exit_code == 0, result.output
    from_jsonl = [row for _, row in iter_note_rows(out_j)]
    from_parquet = [row for _, row in iter_note_rows(out_p)]
    assert from_parquet == from_jsonl
    assert [r.get("patient") for r in from_parquet] == [None, "p1", 7]
    assert from_parquet[2]["visit"] == {"ward": "ICU"} and from_parquet[1]["tags"] == ["x", "y"]
    assert pq.read_schema(out_p).names == ["id", "text", "spans", "relations", "model_version", "metadata"]


def test_every_next_step_reads_preannotates_parquet(tmp_path):
    """Before: ingest, convert and export raised a traceback on a list column; push and relations said 'not UTF-8'."""
    src = _jsonl(tmp_path, ROWS)
    out = tmp_path / "pre.parquet"
    assert _run("preannotate", "-i", src, "-o", out, "--no-model", "--rules-only", "--preview", "2").exit_code == 0
    page = (tmp_path / "pre.preview.html").read_text()
    assert sum(r["text"].split()[1] in page for r in ROWS) == 2  # the preview's 2 notes, read from the Parquet
    docs = read_dataframe(out)
    assert [d.id for d in docs] == ["a", "b", "c"] and docs[1].note.metadata["patient"] == "p1"
    assert [len(d.spans) for d in docs] == [len(r["spans"]) for _, r in iter_note_rows(out)]
    assert sum(len(d.spans) for d in docs) > 0
    assert [d.id for d, _ in read_preannotations(out)] == ["a", "b", "c"]
    converted = tmp_path / "pre2.jsonl"
    result = _run("convert", "-i", out, "-o", converted)
    assert result.exit_code == 0, result.output
    back = [json.loads(line) for line in converted.read_text().splitlines()]
    assert [(r["id"], len(r["spans"]), r.get("patient")) for r in back] == [
        (d.id, len(d.spans), d.note.metadata.get("patient")) for d in docs
    ]


def test_relations_read_a_parquet_with_span_ids(tmp_path):
    spans = [
        {"id": "T1", "start": 0, "end": 2, "label": "Negation"},
        {"id": "T2", "start": 3, "end": 8, "label": "Condition"},
    ]
    row = {"id": "r1", "text": "No fever.", "spans": spans}
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([parquet_record(row)]), path)
    assert read_relation_rows(path)[0]["spans"] == row["spans"]


def test_deid_reads_a_csv_extract(tmp_path):
    src = tmp_path / "notes.csv"
    src.write_text('id,text,patient\nn1,"Seen on 2023-01-02, call 555-123-4567.",007\n')
    out, phi = tmp_path / "deid.jsonl", tmp_path / "phi.jsonl"
    result = _run("deid", "-i", src, "-o", out, "--phi-output", phi)
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert "555-123-4567" not in row["text"] and "2023-01-02" not in row["text"]
    assert {s["label"] for s in json.loads(phi.read_text())["spans"]} >= {"Date", "Phone"}


@pytest.mark.parametrize(
    "args",
    [
        ["deid", "-i", "{src}", "-o", "{tmp}/deid.csv"],
        ["deid", "-i", "{src}", "-o", "{tmp}/deid.jsonl", "--phi-output", "{tmp}/phi.parquet"],
        ["preannotate", "-i", "{src}", "-o", "{tmp}/pre.csv", "--no-model"],
        ["relations", "-i", "{src}", "-o", "{tmp}/rel.parquet"],
        ["assertions", "-i", "{src}", "-o", "{tmp}/a.csv"],
    ],
)
def test_a_json_lines_output_named_like_a_table_is_refused(tmp_path, args):
    """Before: JSON lines were written under the .csv/.parquet name, and the next command read them as a table."""
    src = _jsonl(tmp_path, [{"id": "a", "text": "No fever.", "start": 3, "end": 8, "spans": []}])
    result = _run(*[a.format(src=src, tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert "is written as JSON lines; name it .jsonl" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.jsonl"]
