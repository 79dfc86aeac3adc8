"""Fault injection against the real Doccano: kill push, pull and export at named points (SIGKILL,
see ``clinical_nlp/faults.py``), let an annotator edit in Doccano, re-run, and check that every
annotator edit survives, nothing is duplicated and every stored row matches its audited hash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from test_doccano_roundtrip import ALICE, BOB, creds, person, register, server  # noqa: F401  (fixtures)

from clinical_nlp import doccano as dc
from clinical_nlp.audit import AuditLog
from clinical_nlp.doccano.push_checks import dedupe_spans
from clinical_nlp.io.attribute_labels import parse_attribute_label
from clinical_nlp.io.jsonl import row_to_annotated
from clinical_nlp.project import init_project
from clinical_nlp.services.validation import span_problems
from clinical_nlp.store import Store
from clinical_nlp.types import Note

pytestmark = [pytest.mark.doccano, pytest.mark.integration]


def _notes(corpora_dir, n_negex=6, n_chia=4):
    """Pre-annotation rows: short negex/ConText notes (1 span) and Chia criteria (up to 6 spans)."""
    rows = []
    for line in (corpora_dir / "negex_context" / "sample.jsonl").read_text().splitlines()[:n_negex]:
        r = json.loads(line)
        span = {k: r[k] for k in ("start", "end", "negation", "temporality", "experiencer")}
        rows.append({"id": r["id"], "text": r["text"], "spans": [{**span, "label": "Condition"}], "deidentified": True})
    for line in (corpora_dir / "chia" / "dev.jsonl").read_text().splitlines():
        r = json.loads(line)
        spans = [
            {k: s[k] for k in ("start", "end", "label", "text")}
            for s in r["spans"]
            if s["label"] == "Condition" and not s.get("fragments")
        ]
        if len(spans) >= 3 and r["text"].strip():
            rows.append({"id": r["id"], "text": r["text"], "spans": spans[:6], "deidentified": True})
        if len(rows) == n_negex + n_chia:
            break
    return rows


@pytest.fixture()
def setup(tmp_path, creds, corpora_dir):  # noqa: F811
    name = f"cnlp-fault-{uuid.uuid4().hex[:10]}"
    project = init_project(tmp_path / "proj", name=name)
    rows = _notes(corpora_dir)
    register(Store(project.store_url)).add_notes(
        [Note(r["id"], r["text"]) for r in rows], deidentified=True, method="test: public sample text"
    )
    pre = tmp_path / "pre.jsonl"
    pre.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "DOCCANO_URL": creds.url}  # the engine's login only: no annotator password
    env.pop("CLINICAL_NLP_CRASH_AT", None)
    return project, pre, rows, env, project.config.doccano.project


def _cli(args, env, crash=None):
    env = {**env, **({"CLINICAL_NLP_CRASH_AT": crash} if crash else {})}
    return subprocess.run(
        [sys.executable, "-m", "clinical_nlp.cli.app", *args], capture_output=True, text=True, env=env, timeout=600
    )


def _push(project, pre, env, name, crash=None):
    args = [
        "doccano",
        "push",
        "--input",
        str(pre),
        "--annotators",
        f"{ALICE},{BOB}",
        "--project-dir",
        str(project.root),
    ]
    return _cli(args, env, crash)


def _project_id(creds, name, who):  # noqa: F811
    found = dc.DoccanoServer(creds).find_project(dc.annotator_project_name(name, who))
    return None if found is None else int(found["id"])


def _session_when_imported(creds, name, who, n, timeout=60.0):  # noqa: F811
    """``who``'s own session once her project holds ``n`` examples (an import a killed push started runs on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _project_id(creds, name, who)
        if pid is not None:
            session = person(creds, who, pid)
            if len(session.examples()) >= n:
                return session
        time.sleep(0.5)
    raise AssertionError(f"{who}'s examples never appeared")


def _doc(row):
    return dedupe_spans(row_to_annotated(row).verified())


def _wanted(rows):
    return {r["id"]: sorted(dc.encode_spans(_doc(r).spans)) for r in rows}


def _edit_one(session, rows) -> tuple[int, list]:
    """The annotator edits the first example: deletes its first entity (with its attribute labels), adds one."""
    by_note = {e["meta"]["note_id"]: e for e in session.examples()}
    for r in rows:
        ex = by_note.get(r["id"])
        if ex is None:
            continue
        spans = sorted(session.spans(ex["id"]), key=lambda s: s["id"])
        if spans:  # the entity and its attribute labels, as a careful annotator deletes them
            first = (spans[0]["start_offset"], spans[0]["end_offset"])
            for sp in spans:
                if (sp["start_offset"], sp["end_offset"]) == first:
                    session.delete_span(ex["id"], sp["id"])
        session.add_span(ex["id"], 0, 1, "Observation")
        return ex["id"], sorted(session.triples(ex["id"]))
    raise AssertionError("no example on the server to edit")


def _assert_integrity(project, creds, name, rows, edited):  # noqa: F811
    """Each annotator's project holds each note once with its pre-annotations, edited ones kept as edited."""
    wanted = _wanted(rows)
    for who in (ALICE, BOB):
        session = person(creds, who, _project_id(creds, name, who))
        examples = session.examples()
        assert sorted(e["meta"]["note_id"] for e in examples) == sorted(wanted), "one example per note"
        for ex in examples:
            got = sorted(session.triples(ex["id"]))
            if (who, ex["id"]) in edited:
                assert got == edited[(who, ex["id"])], f"{who}'s edit on example {ex['id']} was changed"
            else:
                assert got == wanted[ex["meta"]["note_id"]], f"{who} example {ex['id']}: {got}"
    store = Store(project.store_url)
    log = AuditLog(store)
    log.verify()
    assert log.verify_rows() == len(store.annotations())
    assert len(store.annotations(kind="pre")) == 2 * len(rows)
    links = dc.example_links(store, name)
    assert len(links) == 2 * len(rows) and len(
        {(ln.doccano_project_id, ln.example_id) for ln in links.values()}
    ) == len(links)


#: each point twice: in the first annotator's part of the push and (":2") in the second's
PUSH_POINTS = [
    f"push.{p}{n}" for p in ("upload_accepted", "import_started", "imported", "pre_saved", "linked") for n in ("", ":2")
]


@pytest.mark.parametrize("edit", [True, False], ids=["annotator-edits", "no-edit"])
@pytest.mark.parametrize("point", PUSH_POINTS)
def test_push_killed_then_resumed(setup, creds, point, edit):  # noqa: F811
    project, pre, rows, env, name = setup
    killed = _push(project, pre, env, name, crash=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    edited = {}
    if edit:  # alice works on an example while the push is dead (her import runs on in Doccano)
        alice = _session_when_imported(creds, name, ALICE, len(rows))
        eid, state = _edit_one(alice, rows)
        edited[(ALICE, eid)] = state
    again = _push(project, pre, env, name)
    assert again.returncode == 0, again.stderr[-2000:]
    report = json.loads(again.stdout[again.stdout.index("{") :])
    assert report["imported"] + report["recovered"] <= 2 * len(rows)
    _assert_integrity(project, creds, name, rows, edited)
    third = _push(project, pre, env, name)  # a third run changes nothing
    third_report = json.loads(third.stdout[third.stdout.index("{") :])
    assert third_report["imported"] == third_report["recovered"] == 0
    assert third_report["already_pushed"] == 2 * len(rows)
    _assert_integrity(project, creds, name, rows, edited)


@pytest.mark.parametrize("point", ["pull.saved:1", "pull.saved:2"])
@pytest.mark.parametrize("edit_between", [False, True], ids=["plain", "edit-before-rerun"])
def test_pull_killed_then_resumed(setup, creds, tmp_path, point, edit_between):  # noqa: F811
    project, pre, rows, env, name = setup
    assert _push(project, pre, env, name).returncode == 0
    sessions = {w: person(creds, w, _project_id(creds, name, w)) for w in (ALICE, BOB)}
    for session in sessions.values():
        for ex in session.examples():
            session.mark_done(ex["id"])
    out = tmp_path / "labels.jsonl"
    args = ["doccano", "pull", "--output", str(out), "--project-dir", str(project.root)]
    killed = _cli(args, env, crash=point)
    assert killed.returncode == -signal.SIGKILL and not out.exists()  # the labels file is atomic
    edited = {}
    if edit_between:  # bob corrects a note after the crashed pull: the re-run must take the correction
        eid, state = _edit_one(sessions[BOB], rows)
        edited[(BOB, eid)] = state
    again = _cli(args, env)
    assert again.returncode == 0, again.stderr[-2000:]
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(got) == len({(r["id"], r["annotator"]) for r in got}) == 2 * len(rows)
    store = Store(project.store_url)
    humans = store.annotations(kind="human")
    assert len(humans) == 2 * len(rows)  # one row per (note, annotator): nothing duplicated
    for (who, eid), state in edited.items():
        nid = next(e["meta"]["note_id"] for e in sessions[who].examples() if e["id"] == eid)
        row = next(r for r in got if r["id"] == nid and r["annotator"] == who)
        assert sorted((s["start"], s["end"], s["label"]) for s in row["spans"]) == sorted(
            t for t in state if parse_attribute_label(t[2]) is None
        )
    AuditLog(store).verify()
    assert AuditLog(store).verify_rows() == len(store.annotations())


@pytest.mark.parametrize("point", ["export.written", "export.renamed"])
def test_export_killed_then_rerun(setup, tmp_path, point):
    project, pre, rows, env, _name = setup
    gold = tmp_path / "gold.jsonl"
    gold.write_text(pre.read_text())
    assert _cli(["ingest", "-i", str(gold), "--project-dir", str(project.root)], env).returncode == 0
    out = tmp_path / "export"
    args = ["export", "-f", "jsonl", "-o", str(out), "-i", str(gold), "--override", "fault test"]
    killed = _cli([*args, "--project-dir", str(project.root)], env, crash=point)
    assert killed.returncode == -signal.SIGKILL
    store = Store(project.store_url)
    exports = AuditLog(store).entries("export")
    assert len(exports) == (1 if point == "export.renamed" else 0)  # audited before the folder appears
    target = out if point == "export.written" else tmp_path / "export2"
    assert not (point == "export.written" and out.exists())
    again = _cli(["export", "-f", "jsonl", "-o", str(target), "-i", str(gold), "--override", "fault test",
                  "--project-dir", str(project.root)], env)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["documents"] == len(rows)
    ids = [json.loads(line)["id"] for f in target.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(ids) == sorted(r["id"] for r in rows)
    assert AuditLog(store).entries("export")[-1].details["content_hash"] == manifest["content_hash"]
    AuditLog(store).verify()


def test_rows_are_valid_preannotations(corpora_dir):
    """The fixture's rows pass the validation gate (so a failure above is the engine's, not the data's)."""
    from clinical_nlp.config import load_label_schema

    for r in _notes(corpora_dir):
        doc = _doc(r)
        assert span_problems(doc.note, doc.spans, load_label_schema())[1] == []
