"""Round trip through a real local Doccano 1.8.4 server (scripts/doccano.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from clinical_nlp import doccano as dc
from clinical_nlp.audit import AuditLog
from clinical_nlp.config import load_guideline
from clinical_nlp.errors import DoccanoError, PolicyError
from clinical_nlp.io.jsonl import row_to_annotated
from clinical_nlp.store import Store

pytestmark = [pytest.mark.doccano, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
URL = os.environ.get("DOCCANO_URL", "http://127.0.0.1:{}".format(os.environ.get("DOCCANO_PORT", "8000")))
ALICE, BOB = "cnlp_test_alice", "cnlp_test_bob"
PASSWORD = "cnlp-test-pw-1"


def _healthy() -> bool:
    try:
        return requests.get(URL + "/v1/health/", timeout=3).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def server() -> str:
    if not _healthy():
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "doccano.sh"), "start"], capture_output=True, text=True, timeout=1200
        )
        if proc.returncode != 0 or not _healthy():
            pytest.fail(f"could not start Doccano: {proc.stderr[-2000:]}")
    return URL


@pytest.fixture(scope="module")
def creds(server: str) -> dc.DoccanoCredentials:
    return dc.DoccanoCredentials(
        url=server,
        admin_user=os.environ.get("DOCCANO_ADMIN_USER", "admin"),
        admin_password=os.environ.get("DOCCANO_ADMIN_PASSWORD", "password"),
        users={ALICE: PASSWORD, BOB: PASSWORD},
    )


def _rows(corpora_dir: Path):
    """Two real negex/ConText notes and one Chia note with a (safety-critical) Drug span."""
    rows = []
    for line in (corpora_dir / "negex_context" / "sample.jsonl").read_text().splitlines()[:2]:
        r = json.loads(line)
        span = {
            "start": r["start"],
            "end": r["end"],
            "label": "Condition",
            "negation": r["negation"],
            "temporality": r["temporality"],
            "experiencer": r["experiencer"],
            "score": 0.9,
            "source": "ctx",
        }
        rows.append({"id": r["id"], "text": r["text"], "spans": [span], "deidentified": True, "model_version": "ctx@1"})
    for line in (corpora_dir / "chia" / "dev.jsonl").read_text().splitlines():
        r = json.loads(line)
        if any(s["label"] == "Drug" for s in r["spans"]):
            spans = [
                {k: s[k] for k in ("start", "end", "label", "text")}
                for s in r["spans"]
                if s["label"] in ("Drug", "Condition")
            ][:6]
            spans[0]["temporality"] = "historical"
            rows.append(
                {"id": r["id"], "text": r["text"], "spans": spans, "deidentified": True, "model_version": "chia-ner@2"}
            )
            break
    return [(row_to_annotated(r).verified(), r) for r in rows]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, creds, corpora_dir):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('dc')}/state.db")
    name = f"cnlp-test-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = _rows(corpora_dir)
    report = dc.push(store, guideline, name, rows, [ALICE, BOB], overlap=2, creds=creds)
    return store, guideline, name, rows, report


def test_push_gives_each_annotator_own_preannotations(pushed, creds):
    store, guideline, name, rows, report = pushed
    assert report.imported == 3 and report.notes == 3
    for who in (ALICE, BOB):
        s = dc.AnnotatorSession(creds.url, who, PASSWORD, report.project_id)
        examples = s.examples()
        assert len(examples) == 3
        by_note = {e["meta"]["note_id"]: e for e in examples}
        for doc, _ in rows:
            got = s.read(by_note[doc.id]["id"], doc.text)
            assert [(x.start, x.end, x.label) for x in got] == sorted((x.start, x.end, x.label) for x in doc.spans)
            want = {
                (x.start, x.end): {k: v for k, v in x.attributes.items() if dc.ATTRIBUTE_DEFAULTS[k] != v}
                for x in doc.spans
            }
            assert {(x.start, x.end): dict(x.attributes) for x in got} == want
    # attribute labels exist as span types with the guideline's names
    labels = dc.AnnotatorSession(creds.url, ALICE, PASSWORD, report.project_id).label_ids()
    for lab in (
        "negation:negated",
        "negation:possible",
        "temporality:historical",
        "temporality:hypothetical",
        "experiencer:family",
        "experiencer:other",
        "Condition",
        "Drug",
    ):
        assert lab in labels


def test_second_push_duplicates_nothing(pushed, creds):
    store, guideline, name, rows, report = pushed
    again = dc.push(store, guideline, name, rows, [ALICE, BOB], overlap=2, creds=creds)
    assert again.imported == 0 and again.spans_created == 0
    s = dc.AnnotatorSession(creds.url, BOB, PASSWORD, report.project_id)
    assert len(s.examples()) == 3
    ex = s.examples()[0]
    doc = {d.id: d for d, _ in rows}[ex["meta"]["note_id"]]
    assert len(s.spans(ex["id"])) == len(dc.encode_spans(doc.spans))


def test_correct_and_pull_roundtrip(pushed, creds, tmp_path):
    store, guideline, name, rows, report = pushed
    pid = report.project_id
    alice = dc.AnnotatorSession(creds.url, ALICE, PASSWORD, pid)
    bob = dc.AnnotatorSession(creds.url, BOB, PASSWORD, pid)
    ex_by_note = {e["meta"]["note_id"]: e["id"] for e in alice.examples()}
    negex_doc = rows[0][0]  # "No ABDOMINAL PAIN." style, negated Condition
    chia_doc = rows[2][0]
    # alice accepts everything
    for eid in ex_by_note.values():
        alice.mark_done(eid)
    # bob deletes one chia span, flips negation on the negex note, confirms both
    victim = chia_doc.spans[-1]
    sid = bob.find_span(ex_by_note[chia_doc.id], victim.start, victim.end, victim.label)
    bob.delete_span(ex_by_note[chia_doc.id], sid)
    s0 = negex_doc.spans[0]
    eid0 = ex_by_note[negex_doc.id]
    if s0.negation == "negated":
        bob.delete_span(eid0, bob.find_span(eid0, s0.start, s0.end, "negation:negated"))
        flipped = "affirmed"
    else:
        bob.add_span(eid0, s0.start, s0.end, "negation:negated")
        flipped = "negated"
    bob.mark_done(eid0)
    bob.mark_done(ex_by_note[chia_doc.id])

    out = tmp_path / "labels.jsonl"
    result = dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds)
    dc.write_pull(result, out)
    got = {(r["id"], r["annotator"]): r for r in map(json.loads, out.read_text().splitlines())}
    assert len(got) == 5  # alice 3 + bob 2

    for doc, _ in rows:
        r = got[(doc.id, ALICE)]
        assert r["edits"]["accepted"] == len(doc.spans) and r["edits"]["total"] == 0
        assert [(s["start"], s["end"], s["label"]) for s in r["spans"]] == sorted(s.key() for s in doc.spans)
        assert r["guideline_version"] == guideline.version and r["timestamp"]
        assert r["text"] == doc.text
    assert got[(chia_doc.id, ALICE)]["model_version"] == "chia-ner@2"
    hist = [s for s in got[(chia_doc.id, ALICE)]["spans"] if s["temporality"] == "historical"]
    assert len(hist) == 1

    rb = got[(chia_doc.id, BOB)]
    assert rb["edits"] == {
        "accepted": len(chia_doc.spans) - 1,
        "deleted": 1,
        "added": 0,
        "changed_label": 0,
        "changed_boundary": 0,
        "changed_attributes": 0,
        "total": 1,
    }
    assert (victim.start, victim.end, victim.label) not in {(s["start"], s["end"], s["label"]) for s in rb["spans"]}
    rn = got[(negex_doc.id, BOB)]
    assert rn["spans"] == [
        {
            "start": s0.start,
            "end": s0.end,
            "label": "Condition",
            "text": s0.text,
            "negation": flipped,
            "temporality": s0.temporality,
            "experiencer": s0.experiencer,
        }
    ]
    assert rn["edits"]["changed_attributes"] == 1 and rn["edits"]["total"] == 1
    assert rn["model_version"] == "ctx@1"

    # the store holds the human annotations with provenance
    anns = store.annotations(kind="human", item=negex_doc.id, annotator=BOB)
    assert len(anns) == 1 and anns[0].edits["changed_attributes"] == 1
    assert anns[0].guideline_version == guideline.version
    actions = [e.action for e in AuditLog(store).entries()]
    assert "doccano.push" in actions and "doccano.pull" in actions

    st = dc.status(store, name, creds=creds)
    assert st["annotators"][ALICE]["assigned"] == 3 and st["annotators"][ALICE]["pre_in_place"] == 3
    assert st["annotators"][ALICE]["done"] == 3 and st["annotators"][BOB]["done"] == 2


def test_push_to_stopped_server_fails_cleanly(tmp_path, corpora_dir):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    bad = dc.DoccanoCredentials(url="http://127.0.0.1:9", users={ALICE: PASSWORD})
    with pytest.raises(DoccanoError, match=r"http://127\.0\.0\.1:9"):
        dc.push(store, load_guideline(), "x", _rows(corpora_dir)[:1], [ALICE], creds=bad)


def test_push_refuses_phi_without_override(tmp_path, corpora_dir, creds):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    doc, row = _rows(corpora_dir)[0]
    row = {**row, "deidentified": False}
    with pytest.raises(PolicyError, match="de-identified"):
        dc.push(store, load_guideline(), "never-created", [(doc, row)], [ALICE], creds=creds)
    with pytest.raises(PolicyError, match="no PHI access"):
        dc.push(
            store,
            load_guideline(),
            "never-created",
            [(doc, row)],
            [ALICE],
            creds=creds,
            allow_phi=True,
            actor="mallory",
            phi_access_check=lambda who: False,
        )
    assert [e.action for e in AuditLog(store).entries()] == []


def test_phi_override_defaults_to_registry(tmp_path, corpora_dir, creds):
    """Without an explicit hook, only a registered annotator with PHI access may override (audited)."""
    from clinical_nlp.annotators import Annotator, Registry

    store = Store(f"sqlite:///{tmp_path}/s.db")
    doc, row = _rows(corpora_dir)[0]
    row = {**row, "deidentified": False}
    with pytest.raises(PolicyError, match="no PHI access"):
        dc.push(
            store,
            load_guideline(),
            "never-created",
            [(doc, row)],
            [ALICE],
            creds=creds,
            allow_phi=True,
            actor="stranger",
        )
    Registry(store).add(Annotator(name="dr-phi", role="admin", phi_access=True))
    bad = dc.DoccanoCredentials(url="http://127.0.0.1:9", users={ALICE: PASSWORD})
    # the gate lets dr-phi through (the unreachable server then fails cleanly) and the override is audited
    with pytest.raises(DoccanoError):
        dc.push(
            store, load_guideline(), "never-created", [(doc, row)], [ALICE], creds=bad, allow_phi=True, actor="dr-phi"
        )
    overrides = [e for e in AuditLog(store).entries() if e.action == "override"]
    assert len(overrides) == 1 and overrides[0].actor == "dr-phi"


def test_one_annotators_slip_does_not_block_the_pull(tmp_path, creds, corpora_dir):
    """Bob deletes an entity but not its attribute label: his note is reported, everyone else's is pulled."""
    store = Store(f"sqlite:///{tmp_path}/state.db")
    name = f"cnlp-slip-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = _rows(corpora_dir)
    report = dc.push(store, guideline, name, rows, [ALICE, BOB], overlap=2, creds=creds)
    alice = dc.AnnotatorSession(creds.url, ALICE, PASSWORD, report.project_id)
    bob = dc.AnnotatorSession(creds.url, BOB, PASSWORD, report.project_id)
    ex_by_note = {e["meta"]["note_id"]: e["id"] for e in bob.examples()}
    chia_doc = rows[2][0]
    hist = next(s for s in chia_doc.spans if s.temporality == "historical")
    eid = ex_by_note[chia_doc.id]
    bob.delete_span(eid, bob.find_span(eid, hist.start, hist.end, hist.label))  # the attribute label stays
    for e in ex_by_note.values():
        alice.mark_done(e)
        bob.mark_done(e)
    pulled = dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds)
    assert {(r["id"], r["annotator"]) for r in pulled} == {(d.id, a) for d, _ in rows for a in (ALICE, BOB)} - {
        (chia_doc.id, BOB)
    }
    problems = dc.pull_problems(store, name)
    assert [(p["note"], p["annotator"]) for p in problems] == [(chia_doc.id, BOB)]
    assert "temporality" in problems[0]["problem"] and "no entity span" in problems[0]["problem"]
    assert AuditLog(store).entries("doccano.pull")[-1].details["problems"][0]["annotator"] == BOB
    # bob removes the stray attribute label too: the next pull takes his note and closes the problem
    bob.delete_span(eid, bob.find_span(eid, hist.start, hist.end, "temporality:historical"))
    pulled = dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds)
    assert (chia_doc.id, BOB) in {(r["id"], r["annotator"]) for r in pulled}
    assert dc.pull_problems(store, name) == []
    AuditLog(store).verify()
    assert AuditLog(store).verify_rows() == len(store.annotations())
