"""A stored note that annotations refer to keeps its text: a re-run of deid or ingest cannot move the
offsets of a clinician's spans under them."""

from __future__ import annotations

import json

import pytest

from clinical_nlp.errors import StoreError
from clinical_nlp.project import init_project
from clinical_nlp.store import Store
from clinical_nlp.types import Annotation, Note, Span


def test_annotated_note_keeps_its_text_and_nothing_of_the_call_is_written():
    store = Store("sqlite:///:memory:")
    store.add_notes([Note("a", "Pt denies chest pain."), Note("b", "Fine.")])
    store.save_annotation(Annotation("a", "alice", (Span(10, 20, "Condition", "chest pain"),)))
    store.add_notes([Note("a", "Pt denies chest pain.")])  # the same text again: fine
    store.add_notes([Note("b", "Fine today.")])  # no annotation refers to b: updated
    with pytest.raises(StoreError, match=r"1 note\(s\) already annotated .*'a'"):
        store.add_notes([Note("c", "New."), Note("a", "Pt Salem denies chest pain.")])
    assert store.get_note("a").text == "Pt denies chest pain." and [n.id for n in store.notes()] == ["a", "b"]


def test_deid_rerun_without_the_key_is_refused_with_it_accepted(tmp_path, cli):
    project = init_project(tmp_path / "proj")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "n1", "text": "Mr. John Smith denies chest pain on 3/4/2020."}) + "\n")
    pd = ["--project-dir", str(project.root)]
    first = ["deid", "--input", str(src), "--output", str(tmp_path / "o1.jsonl"), "--key", "k1", *pd]
    assert cli(first).exit_code == 0
    store = Store(project.store_url)
    text = store.get_note("n1").text
    start = text.index("chest pain")
    store.save_annotation(Annotation("n1", "alice", (Span(start, start + 10, "Condition", "chest pain"),)))
    again = ["deid", "--input", str(src), "--output", str(tmp_path / "o2.jsonl"), "--key", "k2", *pd]
    code, output = cli(again)
    assert code == 2 and "already annotated" in output and "--key" in output
    assert store.get_note("n1").text == text
    same_key = ["deid", "--input", str(src), "--output", str(tmp_path / "o3.jsonl"), "--key", "k1", *pd]
    assert cli(same_key).exit_code == 0 and store.get_note("n1").text == text
