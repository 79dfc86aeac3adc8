"""CSV (and Parquet) tables of notes, one row per note: read by preannotate, ingest and convert."""

from __future__ import annotations

import pandas as pd
import pytest

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.dataframe import read_dataframe
from clinical_nlp.io.notes_table import iter_csv_note_rows
from clinical_nlp.scale import iter_input_rows


def _csv(tmp_path, content: bytes | str, name: str = "notes.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_rows_keep_text_line_breaks_zeros_and_metadata(tmp_path):
    path = _csv(
        tmp_path, '\ufeffid,text,patient,note_type\nn1,"No fever.\nNo cough, no pain.",007,\n\nn2,Aspirin,008,nursing\n'
    )
    rows = list(iter_csv_note_rows(path))
    assert rows == [
        (2, {"id": "n1", "text": "No fever.\nNo cough, no pain.", "patient": "007"}),
        (5, {"id": "n2", "text": "Aspirin", "patient": "008", "note_type": "nursing"}),
    ]
    assert [row for _, row in iter_input_rows(path)] == [row for _, row in rows]


def test_a_note_longer_than_csvs_default_field_limit(tmp_path):
    text = "fever " * 40_000
    rows = list(iter_csv_note_rows(_csv(tmp_path, f"id,text\nbig,{text}\n")))
    assert rows[0][1]["text"] == text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"empty file: no header row"),
        ("id;text\nn1;fever\n", r"notes.csv:1: a comma-separated notes table needs an 'id' and a 'text' column"),
        ("note,body\nn1,fever\n", r"this header has \['note', 'body'\]"),
        ('id,text\nn1,"unclosed\n', r"notes.csv:2: malformed CSV"),
        ("id,text\nn1,fever\nn2,a,b\n", r"notes.csv:3: 3 fields where the header has 2"),
        (b"id,text\nn1,fine\nn2,caf\xe9\n", r"notes.csv:3: not valid UTF-8"),
    ],
)
def test_bad_tables_name_file_and_line(tmp_path, content, message):
    with pytest.raises(InputFormatError, match=message):
        list(iter_csv_note_rows(_csv(tmp_path, content)))


def test_duplicate_ids_refused_by_preannotate_reader(tmp_path):
    with pytest.raises(InputFormatError, match=r"notes.csv:3: duplicate id 'n1' \(first on line 2\)"):
        list(iter_input_rows(_csv(tmp_path, "id,text\nn1,a\nn1,b\n")))


def test_ingest_and_convert_read_a_notes_table_csv_or_parquet(tmp_path):
    path = _csv(tmp_path, "id,text,patient\nn1,Pt denies chest pain,007\nn2,fever,\n")
    docs = read_dataframe(path)
    assert [(d.id, d.text, dict(d.note.metadata), d.spans) for d in docs] == [
        ("n1", "Pt denies chest pain", {"patient": "007"}, ()),
        ("n2", "fever", {}, ()),
    ]
    pq = tmp_path / "notes.parquet"
    pd.DataFrame({"doc_id": ["a"], "doc_text": ["cough"], "ward": ["ICU"]}).to_parquet(pq)
    (doc,) = read_dataframe(pq)
    assert (doc.id, doc.text, dict(doc.note.metadata)) == ("a", "cough", {"ward": "ICU"})
    with pytest.raises(
        InputFormatError, match=r"dup.csv:3: duplicate id .n1. \(first on line 2\)"
    ):  # as in preannotate
        read_dataframe(_csv(tmp_path, "id,text\nn1,a\nn1,b\n", "dup.csv"))


def test_preannotate_a_csv_extract(tmp_path):
    import json

    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app

    path = _csv(tmp_path, 'id,text,patient\nn1,"Pt denies chest pain, has fever",007\n')
    out = tmp_path / "pre.jsonl"
    result = CliRunner().invoke(app, ["preannotate", "-i", str(path), "-o", str(out), "--no-model", "--rules-only"])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["id"], row["patient"]) == ("n1", "007")
    assert row["text"] == "Pt denies chest pain, has fever" and "fever" in {s["text"] for s in row["spans"]}
