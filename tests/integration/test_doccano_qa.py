"""QA review as a Doccano task, against the real local server: the reviewer confirms or corrects in her
own project; pull records the reviews, and a correction becomes gold as her decision."""

from __future__ import annotations

import json
import uuid

import pytest
from test_doccano_adjudication import EXPERT, expert_store, project_copy
from test_doccano_roundtrip import PASSWORD, creds, person, register, server  # noqa: F401  (fixtures)

from clinical_nlp.audit import AuditLog
from clinical_nlp.doccano.qa_review import pull_qa_review, push_qa_review
from clinical_nlp.qa import qa_todo, review_history
from clinical_nlp.types import Annotation, Span

pytestmark = [pytest.mark.doccano, pytest.mark.integration]

TEXTS = {"qa-1": "Aspirin 81 mg daily.", "qa-2": "Started metformin 500 mg."}


@pytest.fixture()
def reviewed(tmp_path, creds):  # noqa: F811
    store, guideline = expert_store(tmp_path, creds, TEXTS)
    gold = [
        Annotation("qa-1", "consensus", (Span(0, 7, "Drug", "Aspirin"),), source="consensus:majority",
                   guideline_version=guideline.version, edits={"annotators": ["a", "b"]}),
        Annotation("qa-2", "consensus", (Span(8, 17, "Drug", "metformin"),), source="consensus:majority",
                   guideline_version=guideline.version, edits={"annotators": ["a", "b"]}),
    ]  # fmt: skip
    written = store.save_annotations(gold, kind="gold")
    AuditLog(store).append("ingest", actor="test", details={"rows": len(written)}, rows=written)
    return store, guideline, f"cnlp-qa-{uuid.uuid4().hex[:10]}"


def test_reviewer_confirms_and_corrects_in_doccano(reviewed, creds):  # noqa: F811
    store, guideline, name = reviewed
    assert {(r["item"], r["label"]) for r in qa_todo(store, guideline.schema)} == {("qa-1", "Drug"), ("qa-2", "Drug")}
    rep = push_qa_review(store, guideline, name, EXPERT, creds=creds)
    assert rep.notes == 2 and rep.imported == 2
    assert push_qa_review(store, guideline, name, EXPERT, creds=creds).skipped_already_pushed == 2
    her = person(creds, EXPERT, rep.project_id)
    examples = {e["meta"]["note_id"]: e for e in her.examples()}
    assert "Drug (safety-critical: every item)" in examples["qa-1"]["meta"]["review"]
    assert examples["qa-1"]["meta"]["shown"].startswith("gold (consensus:majority")
    her.mark_done(examples["qa-1"]["id"])  # right as it is
    eid = examples["qa-2"]["id"]  # the dose is part of the drug mention in this guideline version: correct it
    her.delete_span(eid, her.find_span(eid, 8, 17, "Drug"))
    her.add_span(eid, 8, 24, "Drug")
    her.add_comment(eid, "guideline 3.2: dose belongs to the mention")
    her.mark_done(eid)

    got = pull_qa_review(store, guideline, name, EXPERT, creds=creds)
    assert got.confirmed == ["qa-1"] and got.corrected == ["qa-2"] and got.problems == [] and got.still_open == 0
    verdicts = {(h["item"], h["verdict"]) for h in review_history(store)}
    assert verdicts == {("qa-1", "confirmed"), ("qa-2", "corrected")}
    corrected = next(h for h in review_history(store) if h["item"] == "qa-2")
    assert "guideline 3.2" in corrected["comment"] and "+Drug [8,24)" in corrected["comment"]
    gold = [a for a in store.annotations(kind="gold", item="qa-2") if a.source == "adjudication"]
    assert len(gold) == 1 and gold[0].annotator == EXPERT and [(s.start, s.end) for s in gold[0].spans] == [(8, 24)]
    assert qa_todo(store, guideline.schema) == []
    again = pull_qa_review(store, guideline, name, EXPERT, creds=creds)
    assert sorted(again.unchanged) == ["qa-1", "qa-2"] and len(review_history(store)) == 2
    AuditLog(store).verify()
    assert AuditLog(store).verify_rows() == len(store.annotations())


def test_cli_qa_push_pull(tmp_path, reviewed, creds, monkeypatch):  # noqa: F811
    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app

    store, _, _ = reviewed
    project, _ = project_copy(tmp_path, store, "gold", "qacli")
    monkeypatch.setenv("DOCCANO_URL", creds.url)
    common = ["--reviewer", EXPERT, "--project-dir", str(project.root)]
    res = CliRunner().invoke(app, ["qa", "push", *common])
    assert res.exit_code == 0, res.output
    pushed = json.loads(res.output[: res.output.rindex("}") + 1])
    her = person(creds, EXPERT, pushed["project_id"])
    for ex in her.examples():
        her.mark_done(ex["id"])
    res = CliRunner().invoke(app, ["qa", "pull", *common])
    assert res.exit_code == 0, res.output
    assert sorted(json.loads(res.output)["confirmed"]) == sorted(TEXTS)
    assert CliRunner().invoke(app, ["qa", "todo", *common[2:]]).output.strip().endswith("QA policy met")
