"""Adjudication as a Doccano task, against the real local server: the expert sees both annotators'
versions in her own project, corrects, marks done; pull records (and amends) her decisions."""

from __future__ import annotations

import json
import uuid

import pytest
from test_doccano_roundtrip import ALICE, BOB, PASSWORD, creds, person, register, server  # noqa: F401  (fixtures)

from clinical_nlp import doccano as dc
from clinical_nlp.annotators import Annotator, Registry
from clinical_nlp.audit import AuditLog
from clinical_nlp.config import load_guideline
from clinical_nlp.consensus.adjudication import QueueCandidate
from clinical_nlp.doccano.adjudication import adjudication_project_name, pull_adjudication, push_adjudication
from clinical_nlp.errors import PolicyError
from clinical_nlp.services.adjudication import build_queue, decisions, pending
from clinical_nlp.store import Store
from clinical_nlp.types import Annotation, Note, Span

pytestmark = [pytest.mark.doccano, pytest.mark.integration]

EXPERT = "cnlp_test_expert"
TEXTS = {"adj-1": "No fever. Mother has asthma.", "adj-2": "Aspirin 81 mg daily for CAD."}


def _human(nid: str, who: str, spans: list[Span]) -> Annotation:
    return Annotation(item=nid, annotator=who, payload=tuple(spans), source="human", guideline_version="g")


def expert_store(tmp_path, creds, texts):  # noqa: F811
    """A store with alice, bob and the expert registered (she has her own Doccano account) and ``texts``."""
    admin = dc.DoccanoServer(creds)
    if admin.missing_users([EXPERT]):
        admin.create_user(EXPERT, PASSWORD)
    guideline = load_guideline()
    store = register(Store(f"sqlite:///{tmp_path}/s.db"))
    Registry(store).add(Annotator(EXPERT, "expert", license_id="MD-7", guideline_version=guideline.version))
    store.add_notes([Note(nid, t) for nid, t in texts.items()], deidentified=True)
    return store, guideline


def project_copy(tmp_path, store: Store, kind: str, name: str):
    """A new project whose store holds ``store``'s team, notes and ``kind`` annotations (audited)."""
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "proj", name=f"{name}{uuid.uuid4().hex[:6]}")
    target = Store(project.store_url)
    for a in Registry(store).list():
        Registry(target).add(a)
    target.add_notes(store.notes(), deidentified=True)
    written = target.save_annotations(store.annotations(kind=kind), kind=kind)
    AuditLog(target).append("ingest", actor="test", details={}, rows=written)
    return project, target


@pytest.fixture()
def queued(tmp_path, creds):  # noqa: F811
    store, guideline = expert_store(tmp_path, creds, TEXTS)
    t1 = TEXTS["adj-1"]
    fever, asthma = (t1.index("fever"), t1.index("fever") + 5), (t1.index("asthma"), t1.index("asthma") + 6)
    written = store.save_annotations(
        [
            _human("adj-1", ALICE, [Span(*fever, "Condition", "fever", {"negation": "negated"}),
                                    Span(*asthma, "Condition", "asthma", {"experiencer": "family"})]),
            _human("adj-1", BOB, [Span(*fever, "Condition", "fever"),
                                  Span(*asthma, "Condition", "asthma", {"experiencer": "family"})]),
            _human("adj-2", ALICE, [Span(0, 7, "Drug", "Aspirin")]),
            _human("adj-2", BOB, [Span(0, 7, "Drug", "Aspirin"), Span(25, 28, "Condition", "CAD")]),
        ],
        kind="human",
    )  # fmt: skip
    AuditLog(store).append("ingest", actor="test", details={"rows": len(written)}, rows=written)
    build_queue(store, [QueueCandidate(n, "text", {"span_f1": 0.5}) for n in TEXTS], expert=EXPERT)
    name = f"cnlp-adj-{uuid.uuid4().hex[:10]}"
    return store, guideline, name, fever


def test_expert_adjudicates_in_doccano_and_pull_records_her_decisions(queued, creds):  # noqa: F811
    store, guideline, name, fever = queued
    rep = push_adjudication(store, guideline, name, EXPERT, creds=creds)
    assert rep.doccano_project == adjudication_project_name(name, EXPERT) and rep.imported == 2
    again = push_adjudication(store, guideline, name, EXPERT, creds=creds)
    assert again.imported == 0 and again.skipped_already_pushed == 2  # idempotent
    expert = person(creds, EXPERT, rep.project_id)
    examples = {e["meta"]["note_id"]: e for e in expert.examples()}
    assert sorted(examples) == sorted(TEXTS)
    meta = examples["adj-1"]["meta"]
    assert "NEG" in meta[f"by {ALICE}"] and "NEG" not in meta[f"by {BOB}"]  # who proposed what
    assert "span_f1" in meta["reasons"] and ALICE in meta["disputed"]
    # the suggestions are the union: the fever span both with and without NEG, asthma with FAM
    triples = sorted(expert.triples(examples["adj-1"]["id"]))
    assert (fever[0], fever[1], "NEG") in triples and ("FAM" in {t[2] for t in triples})

    # adj-1: she agrees with alice (keeps NEG), comments why, marks done; adj-2 she leaves open
    eid = examples["adj-1"]["id"]
    expert.add_comment(eid, "'No' negates fever (4.1)")
    expert.mark_done(eid)
    got = pull_adjudication(store, guideline, name, EXPERT, creds=creds)
    assert got.decided == ["adj-1"] and got.problems == [] and got.still_open == 1
    (gold,) = store.annotations(kind="gold", item="adj-1")
    assert gold.annotator == EXPERT and gold.edits["reason"] == "'No' negates fever (4.1)"
    assert sorted((s.start, s.end, s.negation, s.experiencer) for s in gold.spans) == [
        (fever[0], fever[1], "negated", "patient"),
        (TEXTS["adj-1"].index("asthma"), TEXTS["adj-1"].index("asthma") + 6, "affirmed", "family"),
    ]
    assert [e.item for e in pending(store)] == ["adj-2"]
    assert pull_adjudication(store, guideline, name, EXPERT, creds=creds).unchanged == ["adj-1"]  # nothing new
    assert len(decisions(store, "adj-1")) == 1

    # she changes her mind in Doccano: the asthma span goes; the re-pull amends, history keeps both
    asthma_id = expert.find_span(eid, TEXTS["adj-1"].index("asthma"), TEXTS["adj-1"].index("asthma") + 6, "Condition")
    fam_id = expert.find_span(eid, TEXTS["adj-1"].index("asthma"), TEXTS["adj-1"].index("asthma") + 6, "FAM")
    expert.delete_span(eid, asthma_id)
    expert.delete_span(eid, fam_id)
    amended = pull_adjudication(store, guideline, name, EXPERT, creds=creds)
    assert amended.amended == ["adj-1"]
    history = decisions(store, "adj-1")
    assert len(history) == 2 and history[1]["supersedes"] == history[0]["id"]
    assert [s.label for s in store.annotations(kind="gold", item="adj-1")[0].spans] == ["Condition"]
    AuditLog(store).verify()
    assert AuditLog(store).verify_rows() == len(store.annotations())


def test_expert_left_behind_is_refused_before_anything_is_sent(queued, creds):  # noqa: F811
    store, guideline, name, _ = queued
    with pytest.raises(PolicyError, match="not as an expert"):
        push_adjudication(store, guideline, name, ALICE, creds=creds)
    with pytest.raises(PolicyError, match="nothing pushed"):
        pull_adjudication(store, guideline, name, EXPERT, creds=creds)
    assert dc.DoccanoServer(creds).find_project(adjudication_project_name(name, ALICE)) is None


def test_cli_adjudicate_push_and_pull(tmp_path, queued, creds, monkeypatch):  # noqa: F811
    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app

    store, _, _, _ = queued
    project, target = project_copy(tmp_path, store, "human", "adjcli")
    monkeypatch.setenv("DOCCANO_URL", creds.url)
    build_queue(target, [QueueCandidate(n, "text", {"span_f1": 0.5}) for n in TEXTS], expert=EXPERT)
    common = ["--expert", EXPERT, "--project", str(project.root)]
    res = CliRunner().invoke(app, ["adjudicate", "push", *common])
    assert res.exit_code == 0, res.output
    pushed = json.loads(res.output[: res.output.rindex("}") + 1])
    assert pushed["imported"] == 2 and "mark it done" in res.output
    expert = person(creds, EXPERT, pushed["project_id"])
    for ex in expert.examples():
        expert.mark_done(ex["id"])  # she accepts every suggestion as it is
    res = CliRunner().invoke(app, ["adjudicate", "pull", *common])
    assert res.exit_code == 0, res.output
    assert sorted(json.loads(res.output)["decided"]) == sorted(TEXTS) and pending(target) == []


def test_a_decision_records_the_guideline_it_was_pushed_under(queued, creds):  # noqa: F811
    """The guideline changed between adjudicate push and pull: her decision keeps the version she saw."""
    store, guideline, name, _ = queued
    rep = push_adjudication(store, guideline, name, EXPERT, creds=creds)
    expert = person(creds, EXPERT, rep.project_id)
    examples = {e["meta"]["note_id"]: e for e in expert.examples()}
    assert examples["adj-1"]["meta"]["guideline_version"] == guideline.version
    expert.mark_done(examples["adj-1"]["id"])
    amended = guideline.copy(update={"version": guideline.version + ".amended"})
    assert pull_adjudication(store, amended, name, EXPERT, creds=creds).decided == ["adj-1"]
    (gold,) = store.annotations(kind="gold", item="adj-1")
    assert gold.guideline_version == guideline.version
    assert decisions(store, "adj-1")[0]["guideline_version"] == guideline.version
