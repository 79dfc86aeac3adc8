"""A retrained model that is worse on dev than the current one is not used for pre-annotation."""

from __future__ import annotations

import pytest

from clinical_nlp import rounds
from clinical_nlp.rounds import RoundSettings, _promotion
from clinical_nlp.store import Store
from clinical_nlp.types import AnnotatedNote, Note


def _metrics(f1):
    return {"strict": {"micro": {"f1": f1}}}


@pytest.fixture()
def current(monkeypatch):
    """The current model scores 0.60 on the dev set."""
    monkeypatch.setattr(rounds, "_current_model", lambda store, before=None: ("model-1", "v1"))
    import clinical_nlp.models.entities as entities

    monkeypatch.setattr(entities, "evaluate_entity_model", lambda model, dev, labels=None: _metrics(0.60))


DEV = [AnnotatedNote(Note("d1", "No fever."))]


@pytest.mark.parametrize(("new_f1", "promoted"), [(0.0, False), (0.57, False), (0.59, True), (0.75, True)])
def test_promotion_guard(current, new_f1, promoted, caplog):
    out = _promotion(Store("sqlite:///:memory:"), 2, new_f1, DEV, RoundSettings(labels=("Condition",)))
    assert out["promoted"] is promoted and out["previous"] == "v1" and out["previous_f1"] == 0.60
    assert ("kept out" in caplog.text) is (not promoted)


def test_first_model_is_promoted_and_a_refused_one_is_skipped(monkeypatch, tmp_path):
    assert _promotion(Store("sqlite:///:memory:"), 1, 0.1, DEV, RoundSettings(labels=("Condition",)))["promoted"]
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    good, bad = tmp_path / "m1", tmp_path / "m2"
    good.mkdir(), bad.mkdir()
    rounds._save(store, 1, "done", {"model_path": str(good), "model_version": "v1", "promotion": {"promoted": True}})
    rounds._save(store, 2, "done", {"model_path": str(bad), "model_version": "v2", "promotion": {"promoted": False}})
    import clinical_nlp.models.entities as entities

    monkeypatch.setattr(entities, "load_entity_model", lambda path: f"loaded:{path}")
    assert rounds._current_model(store) == (f"loaded:{good}", "v1")  # round 2's worse model is not used
