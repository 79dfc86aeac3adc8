"""Active-learning rounds end to end on the real Doccano server (simulated annotators)."""

from __future__ import annotations

import json
import time

import pytest

from clinical_nlp.audit import AuditLog
from clinical_nlp.demo import SCHEMA_LABELS, doccano_ready_gold, simulate_annotators
from clinical_nlp.io.jsonl import read_jsonl
from clinical_nlp.project import init_project
from clinical_nlp.rounds import RoundError, RoundSettings, _save, finish_round, rounds, start_round
from clinical_nlp.simulate import AnnotatorSkill, SimulatedAnnotator
from clinical_nlp.store import Store
from clinical_nlp.types import Note

pytestmark = [pytest.mark.doccano, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture()
def demo_env(tmp_path, corpora_dir, monkeypatch):
    monkeypatch.setenv("DOCCANO_USER_PASSWORDS", "ann-a:Rt7-qpw!x1,ann-b:Rt7-qpw!x2,boss:Rt7-qpw!x3")
    project = init_project(tmp_path / "proj", name="rounds-test")
    store = Store(project.store_url)
    pool = doccano_ready_gold(read_jsonl(corpora_dir / "chia" / "train.jsonl"))[:20]
    dev = doccano_ready_gold(read_jsonl(corpora_dir / "chia" / "dev.jsonl"))[:8]
    store.add_notes([Note(d.id, d.text) for d in pool], deidentified=True)
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

    simulate_annotators(project, store, 1, sims, gold, SCHEMA_LABELS)
    done = finish_round(project, expert_decision=_expert(gold), dev=dev)
    assert done["state"] == "done"
    gold_items = {a.item for a in store.annotations(kind="gold")}
    assert set(done["batch"]) <= gold_items
    # annotator b misses spans, so agreement is imperfect and the edits are counted
    assert done["edits"]["total"] > 0
    assert 0.0 <= done["agreement"]["overall"]["span_f1_exact"] < 1.0

    # crash after selection of round 2: the rerun resumes the same batch and pushes it once
    info2 = start_round(project, settings)
    batch2 = info2["batch"]
    assert not set(batch2) & set(done["batch"])
    _save(store, 2, "selected", {k: v for k, v in info2.items() if k not in ("number", "state")})
    again = start_round(project, settings)
    assert again["batch"] == batch2 and again["state"] == "pushed"
    assert again["strategy"] == "entropy"  # a model exists after round 1

    simulate_annotators(project, store, 2, sims, gold, SCHEMA_LABELS)
    final = finish_round(project, expert_decision=_expert(gold), dev=dev)
    report = json.loads(open(final["report"]).read())
    assert [p["n_docs"] for p in report["learning_curve"]] == [4, 8]
    assert report["parent_model"] == done["model_version"]
    assert (project.root / "reports" / "round-002" / "learning_curve.png").stat().st_size > 0
    actions = [e.action for e in AuditLog(store).entries()]
    assert "train" in actions and "adjudicate" in actions or "round" in actions
    assert AuditLog(store).verify() == len(actions)
