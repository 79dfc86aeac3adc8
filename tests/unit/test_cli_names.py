"""A comma-separated annotator list naming someone twice is refused before any work."""

from __future__ import annotations

import json

import pytest

NOTE = {"id": "n1", "text": "Seen today for chest pain."}


@pytest.mark.parametrize(
    "args",
    [
        ["round", "start", "--annotators", "alice,bob,alice"],
        ["doccano", "push", "--input", "IN", "--annotators", "alice, alice"],
        ["doccano", "pull", "--output", "OUT", "--annotators", "bob,bob"],
    ],
)
def test_an_annotator_named_twice_is_refused(tmp_path, cli, monkeypatch, args):
    monkeypatch.setenv("DOCCANO_URL", "http://127.0.0.1:9")  # refused before any server is asked
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "proj")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(NOTE) + "\n")
    args = [str(src) if a == "IN" else str(tmp_path / "out.jsonl") if a == "OUT" else a for a in args]
    code, output = cli([*args, "--project-dir", str(project.root)])
    assert code == 2 and "is named twice" in output, output
