"""Active-learning rounds end to end on the real Doccano server (simulated annotators)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from clinical_nlp.audit import AuditLog
from clinical_nlp.demo import (
    SCHEMA_LABELS,
    create_demo_accounts,
    doccano_ready_gold,
    register_demo_team,
    simulate_annotators,
)
from clinical_nlp.io.jsonl import read_jsonl
from clinical_nlp.project import init_project
from clinical_nlp.rounds import RoundError, RoundSettings, _save, finish_round, rounds, start_round
from clinical_nlp.simulate import AnnotatorSkill, SimulatedAnnotator
from clinical_nlp.store import Store
from clinical_nlp.types import Note

pytestmark = [pytest.mark.doccano, pytest.mark.integration, pytest.mark.slow]
LOGINS = {"ann-a": "Rt7-qpw!x1", "ann-b": "Rt7-qpw!x2", "boss": "Rt7-qpw!x3"}


@pytest.fixture()
def demo_env(tmp_path, corpora_dir, monkeypatch):
    create_demo_accounts(LOGINS)  # the people create their own accounts; the engine never sees LOGINS
    project = init_project(tmp_path / "proj", name="rounds-test")
    store = Store(project.store_url)
    pool = doccano_ready_gold(read_jsonl(corpora_dir / "chia" / "train.jsonl"))[:20]
    dev = doccano_ready_gold(read_jsonl(corpora_dir / "chia" / "dev.jsonl"))[:8]
    store.add_notes([Note(d.id, d.text) for d in pool], deidentified=True)
    register_demo_team(store, ("ann-a", "ann-b"), "boss", project.guideline().version)
    settings = RoundSettings(
        strategy="entropy",
        batch=4,
        annotators=("ann-a", "ann-b"),
        expert="boss",
        doccano_project=f"rounds-test-{int(time.time() * 1000)}",
        epochs=3,
    )
    return project, store, {d.id: d for d in pool}, dev, settings


def _expert(gold):
    def decide(note, _by, reasons):
        return gold[note.id].spans, "oracle: " + "; ".join(reasons)

    return decide


def test_two_rounds_resume_and_report(demo_env):
    project, store, gold, dev, settings = demo_env
    sims = {"ann-a": SimulatedAnnotator("ann-a"), "ann-b": SimulatedAnnotator("ann-b", AnnotatorSkill(miss_rate=0.3))}

    info = start_round(project, settings)
    assert info["state"] == "pushed" and len(info["batch"]) == 4
    # finishing before the annotators are done is refused and loses nothing
    with pytest.raises(RoundError, match="not marked done"):
        finish_round(project, expert_decision=_expert(gold), dev=dev)
    assert rounds(store)[-1]["state"] == "pushed"

    simulate_annotators(project, store, 1, sims, gold, SCHEMA_LABELS, LOGINS)
    done = finish_round(project, expert_decision=_expert(gold), dev=dev)
    assert done["state"] == "done"
    gold_items = {a.item for a in store.annotations(kind="gold")}
    assert set(done["batch"]) <= gold_items
    # annotator b misses spans, so agreement is imperfect and the edits are counted
    assert done["edits"]["total"] > 0
    assert 0.0 <= done["agreement"]["overall"]["span_f1_exact"] < 1.0
    # the suggestion check names exactly the notes both annotators left unchanged
    labels = [json.loads(x) for x in Path(done["labels_path"]).read_text(encoding="utf-8").splitlines()]
    both_unchanged = {
        nid
        for nid in done["batch"]
        if len([r for r in labels if r["id"] == nid]) >= 2
        and all(r["edits"]["total"] == 0 for r in labels if r["id"] == nid)
    }
    assert set(done["unchanged_suggestions"]["notes"]) == both_unchanged

    # crash after selection of round 2: the rerun resumes the same batch and pushes it once
    info2 = start_round(project, settings)
    batch2 = info2["batch"]
    assert not set(batch2) & set(done["batch"])
    _save(store, 2, "selected", {k: v for k, v in info2.items() if k not in ("number", "state")})
    again = start_round(project, settings)
    assert again["batch"] == batch2 and again["state"] == "pushed"
    assert again["strategy"] == "entropy"  # a model exists after round 1

    simulate_annotators(project, store, 2, sims, gold, SCHEMA_LABELS, LOGINS)
    final = finish_round(project, expert_decision=_expert(gold), dev=dev)
    report = json.loads(Path(final["report"]).read_text(encoding="utf-8"))
    assert [p["n_docs"] for p in report["learning_curve"]] == [4, 8]
    assert report["parent_model"] == done["model_version"]
    assert (project.root / "reports" / "round-002" / "learning_curve.png").stat().st_size > 0
    actions = [e.action for e in AuditLog(store).entries()]
    assert "train" in actions and "adjudicate" in actions or "round" in actions
    assert AuditLog(store).verify() == len(actions)
    assert AuditLog(store).verify_rows() == len(store.annotations())  # every row written is audited
    assert final["promotion"]["previous"] == done["model_version"] and "dev strict F1" in final["promotion"]["why"]


def test_a_round_with_suggested_links(demo_env):
    """round start --relations: the shipped relation model links the suggestions; they reach each annotator's
    project, come back with her edits, are compared and kept in the consensus gold where a majority agrees."""
    from dataclasses import replace

    project, store, gold, dev, settings = demo_env
    settings = replace(settings, relations=True)
    sims = {"ann-a": SimulatedAnnotator("ann-a"), "ann-b": SimulatedAnnotator("ann-b", AnnotatorSkill(miss_rate=0.3))}
    info = start_round(project, settings)
    pre = store.annotations(kind="pre")
    assert sum(len(a.relations) for a in pre) > 0
    for a in pre:
        ids = {s.id for s in a.spans}
        assert all(r["arg1"] in ids and r["arg2"] in ids for r in a.relations)
    simulate_annotators(project, store, info["number"], sims, gold, SCHEMA_LABELS, LOGINS)
    schema = project.guideline().schema

    def expert(note, _by, reasons):  # the oracle's spans, and one link she draws where the schema allows one
        spans = tuple(replace(s, id=f"T{k}") for k, s in enumerate(gold[note.id].spans, start=1))
        links = [
            {"type": r.name, "arg1": a.id, "arg2": b.id}
            for a in spans
            for b in spans
            for r in schema.relations
            if a is not b and r.allows(a.label, b.label)
        ][:1]
        return spans, "oracle: " + "; ".join(reasons), links

    done = finish_round(project, expert_decision=expert, dev=dev)
    assert done["state"] == "done"
    adjudicated = [a for a in store.annotations(kind="gold") if a.source == "adjudication"]
    assert adjudicated and all(len(a.relations) == 1 for a in adjudicated if len(a.spans) > 1)
    assert done["agreement"]["relations"]["relation_f1"] is not None
    assert "relations_kept" in done["edits"]
    humans = store.annotations(kind="human")
    assert sum(len(a.relations) for a in humans) > 0
    consensus = [a for a in store.annotations(kind="gold") if a.source.startswith("consensus")]
    assert all({r["arg1"], r["arg2"]} <= {s.id for s in a.spans} for a in consensus for r in a.relations)


FINISH_SCRIPT = """
import json, sys
from clinical_nlp.config import load_project
from clinical_nlp.io.jsonl import read_jsonl
from clinical_nlp.rounds import finish_round
project = load_project(sys.argv[1])
gold = {d.id: d for d in read_jsonl(sys.argv[2], allow_empty=True)}
dev = read_jsonl(sys.argv[3], allow_empty=True)
def oracle(note, _by, reasons):
    return gold[note.id].spans, "oracle: " + "; ".join(reasons)
info = finish_round(project, expert_decision=oracle, dev=dev)
print(json.dumps({"state": info["state"]}))
"""


@pytest.mark.parametrize("point", ["round.pulled", "round.consensus"])
def test_round_finish_killed_then_resumed(demo_env, tmp_path, monkeypatch, point):
    """``round finish`` killed after the pull or after consensus: the re-run finishes, nothing twice."""
    import os
    import signal
    import subprocess
    import sys

    from clinical_nlp.io.jsonl import write_jsonl
    from clinical_nlp.services.adjudication import decisions, entries

    project, store, gold, dev, settings = demo_env
    sims = {"ann-a": SimulatedAnnotator("ann-a"), "ann-b": SimulatedAnnotator("ann-b", AnnotatorSkill(miss_rate=0.3))}
    info = start_round(project, settings)
    simulate_annotators(project, store, 1, sims, gold, SCHEMA_LABELS, LOGINS)
    write_jsonl(tmp_path / "gold.jsonl", list(gold.values()))
    write_jsonl(tmp_path / "dev.jsonl", list(dev))
    cmd = [
        sys.executable,
        "-c",
        FINISH_SCRIPT,
        str(project.root),
        str(tmp_path / "gold.jsonl"),
        str(tmp_path / "dev.jsonl"),
    ]
    killed = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "CLINICAL_NLP_CRASH_AT": point}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert rounds(store)[-1]["state"] == point.split(".")[1]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert rounds(store)[-1]["state"] == "done"
    batch = set(info["batch"])
    gold_rows = [a for a in store.annotations(kind="gold") if a.item in batch]
    assert sorted(a.item for a in gold_rows) == sorted(batch)  # one gold row per note
    decided = [e for e in entries(store) if e.item in batch]
    assert len(decisions(store)) == len(decided)  # each queued note decided once, not again on resume
    assert len(store.annotations(kind="human")) == 2 * len(batch)
    AuditLog(store).verify()
    assert AuditLog(store).verify_rows() == len(store.annotations())


def test_round_routes_adjudication_through_the_experts_doccano_project(demo_env, capsys):
    """Without a decision given, finish pushes the queued notes to the expert's Doccano project and stops
    naming it; she decides there; finish again records her decisions and completes the round."""
    from clinical_nlp.demo import simulate_expert_in_doccano
    from clinical_nlp.rounds import round_status
    from clinical_nlp.services.adjudication import pending

    project, store, gold, dev, settings = demo_env
    sims = {"ann-a": SimulatedAnnotator("ann-a"), "ann-b": SimulatedAnnotator("ann-b", AnnotatorSkill(miss_rate=0.5))}
    info = start_round(project, settings)
    before = round_status(project)["doccano"]["annotators"]
    assert before["ann-a"]["done"] == 0 and before["ann-a"]["last_activity"] is None
    simulate_annotators(project, store, 1, sims, gold, SCHEMA_LABELS, LOGINS)
    after = round_status(project)["doccano"]["annotators"]
    assert after["ann-a"]["done"] == after["ann-a"]["assigned"] == 4 and after["ann-a"]["last_activity"]

    def in_doccano(note, _by, reasons):
        return None

    with pytest.raises(RoundError, match=r"wait for boss's adjudication in Doccano .*--adjudication--boss"):
        finish_round(project, expert_decision=in_doccano, dev=dev)
    queued = {e.item for e in pending(store)}
    assert queued and queued <= set(info["batch"]) and rounds(store)[-1]["state"] == "pulled"
    n = simulate_expert_in_doccano(
        store, settings.doccano_project, "adjudication", "boss", LOGINS["boss"],
        lambda note: (gold[note.id].spans, "oracle"),
    )  # fmt: skip
    assert n == len(queued)
    done = finish_round(project, expert_decision=in_doccano, dev=dev)
    assert done["state"] == "done" and pending(store) == []
    by_note = {a.item: a for a in store.annotations(kind="gold")}
    for nid in queued:  # her decision is the gold, recorded in this round
        assert by_note[nid].annotator == "boss" and by_note[nid].source == "adjudication" and by_note[nid].round == 1
    assert set(info["batch"]) <= set(by_note)
    assert AuditLog(store).verify_rows() == len(store.annotations())
