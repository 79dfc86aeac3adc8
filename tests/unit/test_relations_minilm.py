"""The MiniLM pair scorer of the relation model: training, probabilities, save/load, blending, chunking."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_relations import _row

from clinical_nlp.errors import ConfigError
from clinical_nlp.models import relations as R
from clinical_nlp.models.relations_minilm import PairTrainConfig, train_pair_scorer
from clinical_nlp.models.relations_onnx import OnnxPairScorer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rows = [_row(i) for i in range(24)]
    linear = R.fit(rows[:16], 1.0)
    ticks: list[tuple[int, int]] = []
    scorer, losses = train_pair_scorer(
        rows[:16], linear, PairTrainConfig(top_layers=1, epochs=4, batch_lines=8), lambda n, t: ticks.append((n, t))
    )
    return rows, linear, scorer, losses, ticks, tmp_path_factory.mktemp("rel-minilm")


def test_fine_tuning_lowers_the_loss_and_reports_progress(trained) -> None:
    _, _, _, losses, ticks, _ = trained
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert sum(n for n, _ in ticks) == ticks[0][1]  # every line of every epoch, against the announced total


def test_probabilities_cover_each_candidate_and_learn_the_links(trained) -> None:
    rows, linear, scorer, _, _, _ = trained
    test = rows[16:]
    cands = [R.candidates(r, linear.allowed) for r in test]
    probs = scorer.pair_probs(test, cands)
    assert [p.shape for p in probs] == [(len(c), len(linear.classes)) for c in cands]
    assert all(np.allclose(p.sum(1), 1.0) for p in probs)
    value = linear.classes.index("Has_value")
    for row, pairs, p in zip(test, cands, probs, strict=True):
        gold = R.gold_pairs(row)
        pos = [p[k, value] for k, (a, b) in enumerate(pairs) if gold.get((a["id"], b["id"])) == "Has_value"]
        neg = [p[k, value] for k, (a, b) in enumerate(pairs) if (a["id"], b["id"]) not in gold]
        assert min(pos) > max(neg)


def test_blended_model_round_trips_and_chunking_changes_nothing(trained, monkeypatch) -> None:
    rows, linear, scorer, _, _, tmp = trained
    linear.scorer, linear.blend = scorer, 0.5
    try:
        path = linear.save(tmp / "model")
        assert json.loads(path.read_text())["minilm"] == {"dir": "minilm", "weight": 0.5}
        again = R.load_relation_model(path.parent)
        assert isinstance(again.scorer, OnnxPairScorer) and again.blend == 0.5  # saved with its graph
        whole = again.score_candidates(rows[16:])
        monkeypatch.setattr(R, "SCORER_CHUNK", 3)
        chunked = again.score_candidates(rows[16:])
        for (_, a), (_, b) in zip(whole, chunked, strict=True):
            assert np.allclose(a, b, atol=1e-5)
        alone = R.load_relation_model(path.parent)
        alone.scorer = None
        linear_only = alone.score_candidates(rows[16:])
        assert any(not np.allclose(a, b) for (_, a), (_, b) in zip(linear_only, whole, strict=True))
        meta = json.loads(path.read_text())
        meta["classes"] = list(reversed(meta["classes"]))
        path.write_text(json.dumps(meta))
        with pytest.raises(ConfigError):
            R.load_relation_model(path.parent)
    finally:
        linear.scorer, linear.blend = None, 0.0


def test_train_relations_chooses_the_blend_on_dev(trained) -> None:
    rows, _, _, _, _, _ = trained
    model, scores = R.train_relations(rows[:16], rows[16:], minilm=PairTrainConfig(top_layers=1, epochs=2))
    info = model.meta["minilm"]
    assert info["blend"] in R.BLEND_GRID and info["used"] == (model.scorer is not None)
    assert scores["modifiers"]["f1"] == 1.0
