"""Resuming interrupted pushes, and the ``clinical-nlp doccano`` commands, against the real server."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import delete
from test_doccano_roundtrip import ALICE, BOB, PASSWORD, _rows, creds, server  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from clinical_nlp import doccano as dc
from clinical_nlp.cli.app import app
from clinical_nlp.config import load_guideline
from clinical_nlp.project import init_project
from clinical_nlp.store import DoccanoLinkRow, Store

pytestmark = [pytest.mark.doccano, pytest.mark.integration]


def test_interrupted_push_resumes_without_duplicates(tmp_path, creds, corpora_dir):  # noqa: F811
    store = Store(f"sqlite:///{tmp_path}/s.db")
    name = f"cnlp-resume-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = _rows(corpora_dir)
    first = dc.push(store, guideline, name, rows, [ALICE, BOB], creds=creds)
    doc = rows[2][0]
    # simulate a crash: links lost after the import, and one annotator's spans half written
    with store.session() as s:
        s.execute(delete(DoccanoLinkRow).where(DoccanoLinkRow.project == name, DoccanoLinkRow.note_id != doc.id))
        row = s.query(DoccanoLinkRow).filter_by(project=name, note_id=doc.id).one()
        row.state = {"assigned": [ALICE, BOB], "pre": {ALICE: True}}
    bob = dc.AnnotatorSession(creds.url, BOB, PASSWORD, first.project_id)
    eid = next(e["id"] for e in bob.examples() if e["meta"]["note_id"] == doc.id)
    spans = bob.spans(eid)
    bob.delete_span(eid, spans[0]["id"])  # bob's own edits since: never undone by a re-run
    bob.add_span(eid, 0, 3, "Condition")
    bobs = sorted(bob.triples(eid))

    again = dc.push(store, guideline, name, rows, [ALICE, BOB], creds=creds)
    assert again.imported == 0  # examples found again by meta.note_id
    assert len(bob.examples()) == 3
    want = sorted(dc.encode_spans(doc.spans))
    assert sorted(bob.triples(eid)) == bobs and again.touched_left_alone == 1
    alice = dc.AnnotatorSession(creds.url, ALICE, PASSWORD, first.project_id)
    assert sorted(alice.triples(eid)) == want
    assert again.skipped_already_pushed == 1  # alice on that note
    # the other notes' links were lost: their untouched examples are found and hold one copy each
    for ex in alice.examples():
        d = next(d for d, _ in rows if d.id == ex["meta"]["note_id"])
        assert sorted(alice.triples(ex["id"])) == sorted(dc.encode_spans(d.spans))


def test_links_of_a_reset_server_are_reconciled(tmp_path, creds, corpora_dir):  # noqa: F811
    """The store's links point at examples the server no longer holds: push re-imports, pull refuses."""
    store = Store(f"sqlite:///{tmp_path}/s.db")
    name = f"cnlp-reset-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = _rows(corpora_dir)
    dc.push(store, guideline, name, rows, [ALICE, BOB], creds=creds)
    with store.session() as s:  # as after a Doccano database reset: the recorded ids are gone
        for row in s.query(DoccanoLinkRow).filter_by(project=name):
            row.example_id += 10_000_000
    with pytest.raises(dc.DoccanoError, match="3 of 3 notes .* run 'doccano push' to reconcile"):
        dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds)
    again = dc.push(store, guideline, name, rows, [ALICE, BOB], creds=creds)
    assert again.stale_links == 3 and again.imported == 0  # found on the server by meta.note_id
    assert dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds) == []  # nothing done yet


def test_cli_push_status_pull(tmp_path, creds, corpora_dir, monkeypatch):  # noqa: F811
    project = init_project(tmp_path / "proj", name="cli-test")
    pre = tmp_path / "pre.jsonl"
    pre.write_text("".join(json.dumps(r) + "\n" for _, r in _rows(corpora_dir)[:2]))
    monkeypatch.setenv("DOCCANO_URL", creds.url)
    monkeypatch.setenv("DOCCANO_ADMIN_USER", creds.admin_user)
    monkeypatch.setenv("DOCCANO_ADMIN_PASSWORD", creds.admin_password)
    monkeypatch.setenv("DOCCANO_USER_PASSWORDS", f"{ALICE}:{PASSWORD},{BOB}:{PASSWORD}")
    name = f"cnlp-cli-{uuid.uuid4().hex[:10]}"
    runner = CliRunner()
    common = ["--project", name, "--project-dir", str(project.root)]
    res = runner.invoke(
        app, ["doccano", "push", "--input", str(pre), "--annotators", f"{ALICE},{BOB}", "--overlap", "1", *common]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{") :])
    assert report["imported"] == 2 and report["assigned"] == {ALICE: 1, BOB: 1}
    assert PASSWORD not in res.output

    alice = dc.AnnotatorSession(creds.url, ALICE, PASSWORD, report["doccano_project_id"])
    for e in alice.examples():
        alice.mark_done(e["id"])
    res = runner.invoke(app, ["doccano", "status", *common])
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert st["annotators"][ALICE] == {"assigned": 1, "pre_in_place": 1, "done": 2}

    out = tmp_path / "labels.jsonl"
    res = runner.invoke(app, ["doccano", "pull", "--output", str(out), *common])
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in out.read_text().splitlines()]
    # alice confirmed both notes (Doccano shows every note to every member); bob confirmed none
    assert sorted(r["annotator"] for r in got) == [ALICE, ALICE]
    assert all(r["edits"]["total"] == 0 for r in got)
    assigned = [r for r in got if r["edits"]["accepted"] > 0]
    assert len(assigned) == 1 and assigned[0]["model_version"] == "ctx@1"
    assert Store(project.store_url).annotations(kind="human", annotator=ALICE)


def test_cli_wrong_port_exits_2_naming_url(tmp_path, corpora_dir, monkeypatch):
    project = init_project(tmp_path / "p2", name="x")
    pre = tmp_path / "pre.jsonl"
    pre.write_text("".join(json.dumps(r) + "\n" for _, r in _rows(corpora_dir)[:1]))
    monkeypatch.setenv("DOCCANO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DOCCANO_USER_PASSWORDS", f"{ALICE}:{PASSWORD}")
    res = CliRunner().invoke(
        app, ["doccano", "push", "--input", str(pre), "--annotators", ALICE, "--project-dir", str(project.root)]
    )
    assert res.exit_code != 0
    assert isinstance(res.exception, dc.DoccanoError) and "http://127.0.0.1:9" in str(res.exception)
