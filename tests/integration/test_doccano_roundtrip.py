"""Round trip through a real local Doccano 1.8.4 server (scripts/doccano.sh)."""

from __future__ import annotations

import json
import os
import re
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
    """The engine's login only; the test people create their own accounts (as a person would)."""
    engine = dc.DoccanoCredentials(
        url=server,
        admin_user=os.environ.get("DOCCANO_ADMIN_USER", "admin"),
        admin_password=os.environ.get("DOCCANO_ADMIN_PASSWORD", "password"),
    )
    admin = dc.DoccanoServer(engine)
    for who in admin.missing_users([ALICE, BOB]):
        admin.create_user(who, PASSWORD)
    return engine


def person(creds: dc.DoccanoCredentials, who: str, report_or_pid) -> dc.AnnotatorSession:
    """``who`` logged in with her own password in her own project (what her browser does)."""
    pid = report_or_pid if isinstance(report_or_pid, int) else report_or_pid.project_ids[who]
    return dc.AnnotatorSession(creds.url, who, PASSWORD, pid)


def register(store: Store, *names: str) -> Store:
    """Register the test people (default alice and bob) as qualified annotators: push refuses anyone else."""
    from clinical_nlp.annotators import Annotator, Registry

    registry, version = Registry(store), load_guideline().version
    for who in names or (ALICE, BOB):
        if registry.find(who) is None:
            registry.add(Annotator(who, license_id=f"RN-{who}", guideline_version=version), actor="test")
    return store


def attest(store: Store, rows):
    """Record the rows' texts as de-identified in the store (the push gate trusts no input field)."""
    store.add_notes([d.note for d, _ in rows], deidentified=True, method="test: public sample text", actor="test")
    return rows


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
    store = register(Store(f"sqlite:///{tmp_path_factory.mktemp('dc')}/state.db"))
    name = f"cnlp-test-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = attest(store, _rows(corpora_dir))
    report = dc.push(store, guideline, name, rows, [ALICE, BOB], overlap=2, creds=creds)
    return store, guideline, name, rows, report


def test_push_gives_each_annotator_own_preannotations(pushed, creds):
    store, guideline, name, rows, report = pushed
    assert report.imported == 6 and report.notes == 3  # one example per (note, annotator)
    for who in (ALICE, BOB):
        s = person(creds, who, report)
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
    labels = person(creds, ALICE, report).label_ids()
    for lab in (
        "NEG",
        "POSS",
        "HIST",
        "HYPO",
        "FAM",
        "OTHER",
        "Condition",
        "Drug",
    ):
        assert lab in labels
    page = dc.DoccanoServer(creds).find_project(report.doccano_projects[ALICE])["guideline"]
    assert "| `NEG` | negation | negated" in page and "| `FAM` | experiencer |" in page  # the legend heads it


def test_second_push_duplicates_nothing(pushed, creds):
    store, guideline, name, rows, report = pushed
    again = dc.push(store, guideline, name, rows, [ALICE, BOB], overlap=2, creds=creds)
    assert again.imported == 0 and again.spans_created == 0 and again.skipped_already_pushed == 6
    assert again.project_ids == report.project_ids
    s = person(creds, BOB, report)
    assert len(s.examples()) == 3
    ex = s.examples()[0]
    doc = {d.id: d for d, _ in rows}[ex["meta"]["note_id"]]
    assert len(s.spans(ex["id"])) == len(dc.encode_spans(doc.spans))


def test_correct_and_pull_roundtrip(pushed, creds, tmp_path):
    store, guideline, name, rows, report = pushed
    alice, bob = person(creds, ALICE, report), person(creds, BOB, report)
    ex_alice = {e["meta"]["note_id"]: e["id"] for e in alice.examples()}
    ex_by_note = {e["meta"]["note_id"]: e["id"] for e in bob.examples()}
    negex_doc = rows[0][0]  # "No ABDOMINAL PAIN." style, negated Condition
    chia_doc = rows[2][0]
    # alice accepts everything
    for eid in ex_alice.values():
        alice.mark_done(eid)
    # bob deletes one chia span, flips negation on the negex note, confirms both
    victim = chia_doc.spans[-1]
    sid = bob.find_span(ex_by_note[chia_doc.id], victim.start, victim.end, victim.label)
    bob.delete_span(ex_by_note[chia_doc.id], sid)
    s0 = negex_doc.spans[0]
    eid0 = ex_by_note[negex_doc.id]
    if s0.negation == "negated":
        bob.delete_span(eid0, bob.find_span(eid0, s0.start, s0.end, "NEG"))
        flipped = "affirmed"
    else:
        bob.add_span(eid0, s0.start, s0.end, "NEG")
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
        "relations_kept": 0,
        "relations_added": 0,
        "relations_deleted": 0,
        "relations_changed_type": 0,
    }
    assert (victim.start, victim.end, victim.label) not in {(s["start"], s["end"], s["label"]) for s in rb["spans"]}
    rn = got[(negex_doc.id, BOB)]
    assert rn["spans"] == [
        {
            "id": "T1",
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
    store = register(Store(f"sqlite:///{tmp_path}/s.db"))
    bad = dc.DoccanoCredentials(url="http://127.0.0.1:9")
    with pytest.raises(DoccanoError, match=r"http://127\.0\.0\.1:9"):
        dc.push(store, load_guideline(), "x", attest(store, _rows(corpora_dir)[:1]), [ALICE], creds=bad)


def test_push_refuses_phi_without_override(tmp_path, corpora_dir, creds):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    doc, row = _rows(corpora_dir)[0]
    row = {**row, "deidentified": False}
    with pytest.raises(PolicyError, match="no de-identification record"):
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

    store = register(Store(f"sqlite:///{tmp_path}/s.db"))
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
    bad = dc.DoccanoCredentials(url="http://127.0.0.1:9")
    with pytest.raises(PolicyError, match=f"annotator\\(s\\) \\['{ALICE}'\\] have no PHI access"):
        dc.push(
            store, load_guideline(), "never-created", [(doc, row)], [ALICE], creds=bad, allow_phi=True, actor="dr-phi"
        )
    version = load_guideline().version
    Registry(store).add(Annotator(ALICE, license_id="RN-a", guideline_version=version, phi_access=True), replace=True)
    # the gate lets dr-phi through (the unreachable server then fails cleanly) and the override is audited
    with pytest.raises(DoccanoError):
        dc.push(
            store, load_guideline(), "never-created", [(doc, row)], [ALICE], creds=bad, allow_phi=True, actor="dr-phi"
        )
    overrides = [e for e in AuditLog(store).entries() if e.action == "override"]
    assert len(overrides) == 1 and overrides[0].actor == "dr-phi" and overrides[0].details["receivers"] == [ALICE]


def _pushed_to_both(tmp_path, creds, corpora_dir, tag: str):
    """A fresh store and Doccano project with the three sample notes pushed to alice and bob."""
    store = register(Store(f"sqlite:///{tmp_path}/state.db"))
    name = f"cnlp-{tag}-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = attest(store, _rows(corpora_dir))
    report = dc.push(store, guideline, name, rows, [ALICE, BOB], overlap=2, creds=creds)
    return store, guideline, name, rows, report


def test_one_annotators_slip_does_not_block_the_pull(tmp_path, creds, corpora_dir):
    """Bob deletes an entity but not its attribute label: his note is reported, everyone else's is pulled."""
    store, guideline, name, rows, report = _pushed_to_both(tmp_path, creds, corpora_dir, "slip")
    alice, bob = person(creds, ALICE, report), person(creds, BOB, report)
    ex_by_note = {e["meta"]["note_id"]: e["id"] for e in bob.examples()}
    chia_doc = rows[2][0]
    hist = next(s for s in chia_doc.spans if s.temporality == "historical")
    eid = ex_by_note[chia_doc.id]
    bob.delete_span(eid, bob.find_span(eid, hist.start, hist.end, hist.label))  # the attribute label stays
    for e in alice.examples():
        alice.mark_done(e["id"])
    for e in ex_by_note.values():
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
    bob.delete_span(eid, bob.find_span(eid, hist.start, hist.end, "HIST"))
    pulled = dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds)
    assert (chia_doc.id, BOB) in {(r["id"], r["annotator"]) for r in pulled}
    assert dc.pull_problems(store, name) == []
    AuditLog(store).verify()
    assert AuditLog(store).verify_rows() == len(store.annotations())


def test_engine_holds_no_annotator_password(pushed, creds, monkeypatch):
    """The push above ran with the engine's login only; a password in the environment is refused."""
    assert not hasattr(creds, "users") and "password" not in repr(creds).lower()
    monkeypatch.setenv("DOCCANO_USER_PASSWORDS", f"{ALICE}:{PASSWORD}")
    with pytest.raises(DoccanoError, match="holds no annotator passwords"):
        dc.DoccanoCredentials.from_env()


def test_each_annotator_sees_only_her_own_project(pushed, creds):
    """Independence by construction: bob is no member of alice's project and cannot read it."""
    _store, _g, name, _rows, report = pushed
    assert report.doccano_projects == {w: dc.annotator_project_name(name, w) for w in (ALICE, BOB)}
    assert report.project_ids[ALICE] != report.project_ids[BOB]
    with pytest.raises(DoccanoError, match="403"):
        person(creds, BOB, report.project_ids[ALICE]).examples()
    # and the imported suggestions belong to the engine's user, not to the annotator
    engine = dc.DoccanoServer(creds)
    admin_id = engine.user_id(creds.admin_user)
    ex = person(creds, ALICE, report).examples()[0]
    assert {sp["user"] for sp in person(creds, ALICE, report).spans(ex["id"])} == {admin_id}


def test_push_names_missing_accounts_and_changes_nothing(tmp_path, creds, corpora_dir):
    stranger = f"nobody-{uuid.uuid4().hex[:8]}"
    store = register(Store(f"sqlite:///{tmp_path}/s.db"), ALICE, stranger)
    rows = attest(store, _rows(corpora_dir))
    before = [(n.id, n.text, n.metadata) for n in store.notes()]
    with pytest.raises(DoccanoError, match=f"no Doccano account for \\['{stranger}'\\]"):
        dc.push(store, load_guideline(), f"cnlp-miss-{uuid.uuid4().hex[:8]}", rows, [ALICE, stranger], creds=creds)
    assert [(n.id, n.text, n.metadata) for n in store.notes()] == before
    assert [e.action for e in AuditLog(store).entries()] == ["annotator", "annotator"]
    assert dc.DoccanoServer(creds).missing_users([stranger]) == [stranger]  # no account was created


def test_pull_takes_the_annotation_time_and_refuses_done_by_someone_else(tmp_path, creds, corpora_dir):
    import datetime as dt

    store = register(Store(f"sqlite:///{tmp_path}/state.db"))
    name = f"cnlp-time-{uuid.uuid4().hex[:10]}"
    guideline = load_guideline()
    rows = attest(store, _rows(corpora_dir)[:2])
    report = dc.push(store, guideline, name, rows, [ALICE], overlap=1, creds=creds)
    alice = person(creds, ALICE, report)
    first, second = alice.examples()
    alice.mark_done(first["id"])
    marked = dt.datetime.now(dt.UTC)
    # the engine's user marks the other example done: that is not the annotator's work
    dc.DoccanoServer(creds).session(report.project_ids[ALICE]).mark_done(second["id"])
    pulled = dc.pull(store, guideline, name, creds=creds)
    assert [r["doccano_example_id"] for r in pulled] == [first["id"]]
    stamp = dt.datetime.fromisoformat(pulled[0]["timestamp"].replace("Z", "+00:00"))
    assert abs((stamp - marked).total_seconds()) < 30 and pulled[0]["pulled_at"] >= pulled[0]["timestamp"][:19]
    assert store.annotations(kind="human")[0].timestamp == pulled[0]["timestamp"]
    problems = dc.pull_problems(store, name)
    assert len(problems) == 1 and "marked done by someone other than" in problems[0]["problem"]


def test_pull_records_the_guideline_a_note_was_pushed_under(tmp_path, creds, corpora_dir):
    """The guideline changed between push and pull: the annotation keeps the pushed version, so drift shows."""
    from clinical_nlp.qa import guideline_drift

    store = register(Store(f"sqlite:///{tmp_path}/state.db"))
    name = f"cnlp-drift-{uuid.uuid4().hex[:10]}"
    pushed_under = load_guideline()
    report = dc.push(store, pushed_under, name, attest(store, _rows(corpora_dir)[:1]), [ALICE], overlap=1, creds=creds)
    alice = person(creds, ALICE, report)
    (example,) = alice.examples()
    alice.mark_done(example["id"])
    amended = pushed_under.copy(update={"version": pushed_under.version + ".amended"})
    (row,) = dc.pull(store, amended, name, creds=creds)
    assert row["guideline_version"] == pushed_under.version
    (ann,) = store.annotations(kind="human")
    assert ann.guideline_version == pushed_under.version
    drift = guideline_drift(store, amended.version)
    assert {(s["annotator"], s["version"]) for s in drift.stale} >= {(ALICE, pushed_under.version)}
    entry = AuditLog(store).entries("doccano.pull")[-1]
    assert entry.details["pushed_under_another_guideline"] == 1
    assert entry.details["guideline_version"] == amended.version


def test_a_dragged_space_is_trimmed_and_a_span_of_blank_space_or_two_negations_is_named(tmp_path, creds, corpora_dir):
    """What a mouse does in Doccano's UI: "fever " with the space after it (read as "fever", the same answer
    as a colleague's), a span on a line break, and NEG and POSS on one concept. Before: the space made a
    disagreement, the blank span went into the store as a Condition, and the last of NEG/POSS won."""
    store, guideline, name, rows, report = _pushed_to_both(tmp_path, creds, corpora_dir, "ws")
    alice, bob = person(creds, ALICE, report), person(creds, BOB, report)
    chia_doc = rows[2][0]
    text = chia_doc.text
    word = next(
        m
        for m in re.finditer(r"[a-z]{4,} ", text)
        if not any(s.start < m.end() and m.start() < s.end for s in chia_doc.spans)
    )
    for session in (alice, bob):
        eid = {e["meta"]["note_id"]: e["id"] for e in session.examples()}[chia_doc.id]
        end = word.end() if session is alice else word.end() - 1  # alice drags the space too
        session.add_span(eid, word.start(), end, "Condition")
    a_eids = {e["meta"]["note_id"]: e["id"] for e in alice.examples()}
    b_eids = {e["meta"]["note_id"]: e["id"] for e in bob.examples()}
    negex_doc = rows[0][0]
    s0 = negex_doc.spans[0]
    bob.add_span(b_eids[negex_doc.id], s0.start, s0.end, "POSS")
    if s0.negation != "negated":
        bob.add_span(b_eids[negex_doc.id], s0.start, s0.end, "NEG")
    blank = rows[1][0].text.find(" ")
    bob.add_span(b_eids[rows[1][0].id], blank, blank + 1, "Condition")
    for session, eids in ((alice, a_eids), (bob, b_eids)):
        for eid in eids.values():
            session.mark_done(eid)
    pulled = {
        (r["id"], r["annotator"]): r for r in dc.pull(store, guideline, name, annotators=[ALICE, BOB], creds=creds)
    }
    got = {
        who: {(s["start"], s["end"], s["text"]) for s in pulled[(chia_doc.id, who)]["spans"]} for who in (ALICE, BOB)
    }
    assert (word.start(), word.end() - 1, word.group().strip()) in got[ALICE] & got[BOB]
    problems = {(p["note"], p["annotator"]): p["problem"] for p in dc.pull_problems(store, name)}
    assert set(problems) == {(negex_doc.id, BOB), (rows[1][0].id, BOB)}
    assert "two negation labels, NEG and POSS" in problems[(negex_doc.id, BOB)]
    assert "covers only white space (' ')" in problems[(rows[1][0].id, BOB)]
    assert not store.annotations(kind="human", item=rows[1][0].id, annotator=BOB)
