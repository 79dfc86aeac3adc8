"""Resuming interrupted pushes, and the ``clinical-nlp doccano`` commands, against the real server."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import delete
from test_doccano_roundtrip import ALICE, BOB, PASSWORD, _rows, attest, creds, person, register, server  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from clinical_nlp import doccano as dc
from clinical_nlp.cli.app import app
from clinical_nlp.config import load_guideline
from clinical_nlp.project import init_project
from clinical_nlp.store import DoccanoExampleRow, Store

pytestmark = [pytest.mark.doccano, pytest.mark.integration]


def test_lost_links_are_recovered_and_edits_never_undone(tmp_path, creds, corpora_dir):  # noqa: F811
    """A crash lost the store's links after the import; bob edited since: the re-run links, imports nothing."""
    store = register(Store(f"sqlite:///{tmp_path}/s.db"))
    name = f"cnlp-resume-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = attest(store, _rows(corpora_dir))
    first = dc.push(store, guideline, name, rows, [ALICE, BOB], creds=creds)
    doc = rows[2][0]
    with store.session() as s:
        s.execute(delete(DoccanoExampleRow).where(DoccanoExampleRow.project == name))
    bob = person(creds, BOB, first)
    eid = next(e["id"] for e in bob.examples() if e["meta"]["note_id"] == doc.id)
    bob.delete_span(eid, bob.spans(eid)[0]["id"])  # bob's own edits since: never undone by a re-run
    bob.add_span(eid, 0, 3, "Condition")
    bobs = sorted(bob.triples(eid))

    again = dc.push(store, guideline, name, rows, [ALICE, BOB], creds=creds)
    assert again.imported == 0 and again.recovered == 6  # examples found again by meta.note_id
    assert len(bob.examples()) == 3 and sorted(bob.triples(eid)) == bobs
    alice = person(creds, ALICE, first)
    for ex in alice.examples():
        d = next(d for d, _ in rows if d.id == ex["meta"]["note_id"])
        assert sorted(alice.triples(ex["id"])) == sorted(dc.encode_spans(d.spans))
    assert len(dc.example_links(store, name)) == 6


def test_links_of_a_reset_server_are_reconciled(tmp_path, creds, corpora_dir):  # noqa: F811
    """The store's links point at examples the server no longer holds: push re-imports, pull refuses."""
    store = register(Store(f"sqlite:///{tmp_path}/s.db"))
    name = f"cnlp-reset-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = attest(store, _rows(corpora_dir))
    first = dc.push(store, guideline, name, rows, [ALICE, BOB], creds=creds)
    engine = dc.DoccanoServer(creds)
    # as after a Doccano database reset: alice's project and everything in it are gone
    engine.http.request("DELETE", f"/v1/projects/{first.project_ids[ALICE]}")
    with pytest.raises(dc.DoccanoError, match="3 of 3 notes .* run 'doccano push' to reconcile"):
        dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds)
    with pytest.raises(dc.DoccanoError, match="not at .* as recorded"):
        dc.status(store, name, creds=creds)
    again = dc.push(store, guideline, name, rows, [ALICE, BOB], creds=creds)
    assert again.stale_links == 3 and again.imported == 3 and again.skipped_already_pushed == 3
    assert again.project_ids[ALICE] != first.project_ids[ALICE]
    assert len(person(creds, ALICE, again).examples()) == 3
    assert dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds) == []  # nothing done yet


def test_cli_push_status_pull(tmp_path, creds, corpora_dir, monkeypatch):  # noqa: F811
    project = init_project(tmp_path / "proj", name="cli-test")
    rows = attest(register(Store(project.store_url)), _rows(corpora_dir)[:2])
    pre = tmp_path / "pre.jsonl"
    pre.write_text("".join(json.dumps(r) + "\n" for _, r in rows))
    monkeypatch.setenv("DOCCANO_URL", creds.url)
    monkeypatch.setenv("DOCCANO_ADMIN_USER", creds.admin_user)
    monkeypatch.setenv("DOCCANO_ADMIN_PASSWORD", creds.admin_password)
    monkeypatch.delenv("DOCCANO_USER_PASSWORDS", raising=False)  # the engine's login only
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

    projects = report["doccano_projects"]
    assert projects[ALICE]["name"] == f"{name}--{ALICE}" and projects[ALICE]["link"].startswith(creds.url)
    alice = person(creds, ALICE, projects[ALICE]["id"])
    assert len(alice.examples()) == 1  # only her assigned note is in her project
    for e in alice.examples():
        alice.mark_done(e["id"])
    res = runner.invoke(app, ["doccano", "status", *common])
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert {k: st["annotators"][ALICE][k] for k in ("assigned", "pre_in_place", "done")} == {
        "assigned": 1,
        "pre_in_place": 1,
        "done": 1,
    }
    assert st["annotators"][BOB]["done"] == 0

    out = tmp_path / "labels.jsonl"
    res = runner.invoke(app, ["doccano", "pull", "--output", str(out), *common])
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in out.read_text().splitlines()]
    # alice confirmed her note; bob confirmed none
    assert [r["annotator"] for r in got] == [ALICE]
    assert got[0]["edits"]["total"] == 0 and got[0]["edits"]["accepted"] > 0 and got[0]["model_version"] == "ctx@1"
    assert Store(project.store_url).annotations(kind="human", annotator=ALICE)
    # bob marks a span of blank space and his note done: named, exit 2 (before: exit 0), alice's row still written
    bob = person(creds, BOB, projects[BOB]["id"])
    (ex,) = bob.examples()
    blank = ex["text"].index(" ")
    bob.add_span(ex["id"], blank, blank + 1, "Condition")
    bob.mark_done(ex["id"])
    res = runner.invoke(app, ["doccano", "pull", "--output", str(out), *common])
    assert res.exit_code == 2, res.output
    assert f"annotator '{BOB}'" in res.output and "covers only white space" in res.output
    assert [json.loads(x)["annotator"] for x in out.read_text().splitlines()] == [ALICE]


def test_cli_refuses_annotator_passwords_in_the_environment(tmp_path, monkeypatch):
    project = init_project(tmp_path / "p3", name="x")
    monkeypatch.setenv("DOCCANO_USER_PASSWORDS", f"{ALICE}:{PASSWORD}")
    res = CliRunner().invoke(app, ["doccano", "status", "--project-dir", str(project.root)])
    assert isinstance(res.exception, dc.DoccanoError) and "holds no annotator passwords" in str(res.exception)
    assert PASSWORD not in res.output


def test_cli_wrong_port_exits_2_naming_url(tmp_path, corpora_dir, monkeypatch):
    project = init_project(tmp_path / "p2", name="x")
    rows = attest(register(Store(project.store_url)), _rows(corpora_dir)[:1])
    pre = tmp_path / "pre.jsonl"
    pre.write_text("".join(json.dumps(r) + "\n" for _, r in rows))
    monkeypatch.setenv("DOCCANO_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("DOCCANO_USER_PASSWORDS", raising=False)
    res = CliRunner().invoke(
        app, ["doccano", "push", "--input", str(pre), "--annotators", ALICE, "--project-dir", str(project.root)]
    )
    assert res.exit_code != 0
    assert isinstance(res.exception, dc.DoccanoError) and "http://127.0.0.1:9" in str(res.exception)
