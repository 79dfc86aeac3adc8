"""round start's selection: only notes the push gate lets through; the strategy's labelled notes are the gold."""

from __future__ import annotations

import numpy as np
import pytest

import clinical_nlp.active as active
from clinical_nlp.errors import ClinicalNLPError
from clinical_nlp.project import init_project
from clinical_nlp.rounds import RoundError, RoundSettings, rounds, start_round
from clinical_nlp.services.privacy import ready_to_push, record_items
from clinical_nlp.store import Store
from clinical_nlp.types import Annotation, Note, Span


class _Recorder:
    """A strategy that records what it was given and takes the first candidates."""

    name = "recorder.v1"

    def __init__(self) -> None:
        self.seen: dict = {}

    def query(self, model, pool, unlabeled_idx, labeled_idx, n, rng):
        self.seen = {"pool": list(pool), "unlabeled": list(unlabeled_idx), "labeled": list(labeled_idx)}
        return np.asarray(list(unlabeled_idx)[:n], dtype=np.int64)


@pytest.fixture()
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCCANO_URL", "http://127.0.0.1:9")  # nothing listens: the push fails after selection
    project = init_project(tmp_path / "proj")
    store = Store(project.store_url)
    store.add_notes([Note("raw", "Seen by Dr Smith today.")])
    store.add_notes([Note(f"ok{i}", f"No fever on day {i}.") for i in range(3)], deidentified=True)
    store.add_notes([Note("review", "Seen at Elm Clinic.")], deidentified=True)
    record_items(store, "review", [{"start": 8, "end": 11, "label": "Location", "reason": "possible Location"}])
    store.add_notes([Note("gold1", "Chest pain resolved.")], deidentified=True)
    store.save_annotation(Annotation("gold1", "corpus", (Span(0, 10, "Condition", "Chest pain"),)), kind="gold")
    return project, store


def test_ready_to_push_names_what_holds_each_note_back(project):
    _, store = project
    ready, held = ready_to_push(store, store.notes())
    assert sorted(n.id for n in ready) == ["gold1", "ok0", "ok1", "ok2"]
    assert held == {"no de-identification record": 1, "awaiting the privacy officer": 1}


def test_selection_skips_unpushable_notes_and_passes_gold_as_labelled(project, monkeypatch):
    proj, store = project
    recorder = _Recorder()
    monkeypatch.setattr(active, "get_strategy", lambda name, **_: recorder)
    settings = RoundSettings(strategy="entropy", batch=10, annotators=("ann_a",), overlap=1, expert="dr_e")
    with pytest.raises(ClinicalNLPError):
        start_round(proj, settings)  # no Doccano: refused after the selection was saved
    (info,) = rounds(store)
    assert sorted(info["batch"]) == ["ok0", "ok1", "ok2"]
    assert info["held_back"] == {"no de-identification record": 1, "awaiting the privacy officer": 1}
    n = len(recorder.seen["unlabeled"])
    assert [recorder.seen["pool"][i].id for i in recorder.seen["labeled"]] == ["gold1"]
    assert recorder.seen["labeled"] == [n] and recorder.seen["pool"][n].spans  # the gold note, with its spans


def test_nothing_pushable_is_refused_with_the_reasons(tmp_path):
    proj = init_project(tmp_path / "proj")
    Store(proj.store_url).add_notes([Note("raw", "Seen by Dr Smith today.")])
    settings = RoundSettings(strategy="random", batch=2, annotators=("ann_a",), overlap=1, expert="dr_e")
    with pytest.raises(RoundError, match=r"no unlabelled note can be selected: 1 no de-identification record"):
        start_round(proj, settings)
    assert rounds(Store(proj.store_url)) == []


def test_notes_already_with_annotators_are_not_selected_again(project, monkeypatch):
    """Before: notes pushed with 'doccano push' (and pulled) were selected, 'pushed' again (skipped: linked),
    and the annotators were told to correct notes they had done."""
    from clinical_nlp.store import DoccanoExampleRow

    proj, store = project
    with store.session() as s:
        s.add(DoccanoExampleRow(project="manual", annotator="ann_a", server="http://x", doccano_project_id=1,
                                note_id="ok0", example_id=7))  # fmt: skip
    store.save_annotation(Annotation("ok1", "ann_b", (Span(0, 2, "Negation", "No"),)), kind="human")
    recorder = _Recorder()
    monkeypatch.setattr(active, "get_strategy", lambda name, **_: recorder)
    settings = RoundSettings(strategy="entropy", batch=10, annotators=("ann_a",), overlap=1, expert="dr_e")
    with pytest.raises(ClinicalNLPError):
        start_round(proj, settings)
    (info,) = rounds(store)
    assert info["batch"] == ["ok2"]
    assert info["held_back"] == {
        "already with annotators": 2,
        "no de-identification record": 1,
        "awaiting the privacy officer": 1,
    }


def test_a_consensus_keeps_the_guideline_versions_of_its_annotations(tmp_path):
    import json

    from clinical_nlp.rounds import _guideline_versions

    path = tmp_path / "labels.jsonl"
    rows = [("n1", "a", "1.0+x"), ("n1", "b", "1.0+y"), ("n2", "a", "1.0+x"), ("n2", "b", "1.0+x"), ("n3", "a", None)]
    path.write_text("".join(json.dumps({"id": n, "annotator": a, "guideline_version": v}) + "\n" for n, a, v in rows))
    assert _guideline_versions(str(path)) == {"n1": "1.0+x,1.0+y", "n2": "1.0+x"}
