"""Command lines whose outputs would overwrite an input, or each other, are refused before any work."""

from __future__ import annotations

import json

import pytest

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.paths import refuse_clashing_paths


def test_output_naming_an_input_or_another_output_is_refused(tmp_path):
    src = tmp_path / "notes.jsonl"
    src.write_text("{}\n")
    with pytest.raises(InputFormatError, match="--output names the --input file"):
        refuse_clashing_paths({"--input": src}, {"--output": tmp_path / "." / "notes.jsonl"})
    with pytest.raises(InputFormatError, match="--output and --phi-output name the same file"):
        refuse_clashing_paths(
            {"--input": src}, {"--output": tmp_path / "o.jsonl", "--phi-output": tmp_path / "o.jsonl"}
        )
    (tmp_path / "link.jsonl").symlink_to(src)
    with pytest.raises(InputFormatError, match="--output names the --input file"):
        refuse_clashing_paths({"--input": src}, {"--output": tmp_path / "link.jsonl"})
    refuse_clashing_paths({"--input": src}, {"--output": tmp_path / "o.jsonl", "--phi-output": None})


NOTE = {"id": "n1", "text": "John Smith was seen on 3/4/2020 at Boston General."}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["deid", "--input", "IN", "--output", "OUT", "--phi-output", "OUT"], "--output and --phi-output"),
        (["deid", "--input", "IN", "--output", "OUT", "--map-output", "OUT"], "--output and --map-output"),
        (["deid", "--input", "IN", "--output", "IN"], "--output names the --input"),
        (["assertions", "--input", "IN", "--output", "IN"], "--output names the --input"),
        (["preannotate", "--input", "IN", "--output", "IN", "--no-model"], "--output names the --input"),
        (["convert", "--input", "IN", "--output", "IN"], "--output names the --input"),
        (["relations", "--input", "IN", "--output", "IN"], "--output names the --input"),
        (["agree", "--input", "IN", "--output", "IN"], "--output names the --input"),
    ],
)
def test_commands_refuse_clashing_paths_and_leave_files_unchanged(tmp_path, cli, args, needle):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps(NOTE) + "\n")
    out.write_text("earlier output\n")
    args = [str(src) if a == "IN" else str(out) if a == "OUT" else a for a in args]
    code, output = cli(args)
    assert code == 2 and needle in output
    assert src.read_text() == json.dumps(NOTE) + "\n" and out.read_text() == "earlier output\n"


def test_no_output_replaces_a_store_or_a_project_file(tmp_path):
    import sqlite3

    from clinical_nlp.io.jsonl import write_rows

    db = tmp_path / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    key = tmp_path / "audit.key"
    key.write_text("k" * 32)
    for victim, message in ((db, "is an SQLite database"), (key, "is a project file")):
        before = victim.read_bytes()
        with pytest.raises(InputFormatError, match=message):
            write_rows(victim, [{"id": "a"}])
        assert victim.read_bytes() == before
    assert write_rows(tmp_path / "fresh.jsonl", [{"id": "a"}]) == 1  # other files as before


def test_clashing_path_check_refuses_a_store_before_any_work(tmp_path):
    import sqlite3

    db = tmp_path / "state.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(InputFormatError, match="is an SQLite database"):
        refuse_clashing_paths({"--input": tmp_path / "in.jsonl"}, {"--output": db})
