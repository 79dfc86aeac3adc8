"""`clinical-nlp al simulate` on the bundled Chia sample with the real fast spaCy model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from clinical_nlp.cli.app import app

pytestmark = pytest.mark.integration

runner = CliRunner()


def test_al_strategies_lists_versioned_names():
    result = runner.invoke(app, ["al", "strategies"])
    assert result.exit_code == 0, result.output
    for name in ("random.v1", "entropy.v1", "kcenter.v1", "cost_aware.v1", "committee.v1"):
        assert name in result.output


@pytest.mark.parametrize("strategy", ["random", "entropy"])
def test_al_simulate_chia_sample(tmp_path, corpora_dir, strategy):
    out = tmp_path / "curve.json"
    args = [
        "al",
        "simulate",
        "--pool",
        str(corpora_dir / "chia" / "train.jsonl"),
        "--eval",
        str(corpora_dir / "chia" / "dev.jsonl"),
        "--strategy",
        strategy,
        "--rounds",
        "2",
        "--batch",
        "8",
        "--seed",
        "3",
        "--epochs",
        "4",
        "--labels",
        "Condition,Drug,Measurement",
        "--output",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    curve = json.loads(out.read_text())
    assert curve["strategy"] == f"{strategy}.v1"
    assert curve["labels"] == ["Condition", "Drug", "Measurement"]
    pts = curve["points"]
    assert [p["round"] for p in pts] == [0, 1, 2]
    assert [p["n_docs"] for p in pts] == [8, 16, 24]
    for p in pts:
        assert {"round", "n_docs", "edits", "f1"} <= set(p)
        assert isinstance(p["edits"], int) and 0.0 <= p["f1"] <= 1.0
    assert pts[0]["edits"] > 0
    assert all(a["edits"] <= b["edits"] for a, b in zip(pts, pts[1:]))


def test_al_simulate_bad_input_exit_2_and_no_output(tmp_path, corpora_dir):
    from clinical_nlp.cli.app import main  # noqa: F401  (main maps ClinicalNLPError to exit 2)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fever", "spans": [{"start": 0, "end": 9, "label": "Condition"}]}\n')
    out = tmp_path / "curve.json"
    result = runner.invoke(
        app,
        ["al", "simulate", "--pool", str(bad), "--eval", str(corpora_dir / "chia" / "dev.jsonl"), "--output", str(out)],
    )
    assert result.exit_code != 0
    assert "bad.jsonl:1" in str(result.exception)
    assert not out.exists()
    result = runner.invoke(
        app,
        [
            "al",
            "simulate",
            "--pool",
            str(corpora_dir / "chia" / "train.jsonl"),
            "--eval",
            str(corpora_dir / "chia" / "dev.jsonl"),
            "--strategy",
            "nope",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code != 0 and "unknown query strategy" in str(result.exception)
    assert not out.exists()
    dev = str(corpora_dir / "chia" / "dev.jsonl")
    result = runner.invoke(app, ["al", "simulate", "--pool", dev, "--eval", dev, "--output", str(out)])
    assert result.exit_code != 0 and "also in the evaluation set" in str(result.exception)
    assert "warning: 30 pool note(s) have the text of an evaluation note" in result.output
    assert not out.exists()


def test_entropy_on_real_model_picks_unlabeled_and_uses_model(corpora_dir):
    from clinical_nlp.active import get_strategy
    from clinical_nlp.io.jsonl import read_jsonl
    from clinical_nlp.simulate import default_train_fn, restrict_labels

    labels = ["Condition", "Drug"]
    pool = restrict_labels(read_jsonl(corpora_dir / "chia" / "train.jsonl", allow_empty=True), labels)
    model = default_train_fn(labels, epochs=3)(pool[:10], 0)
    unlabeled = np.arange(10, 40)
    for name in ("entropy", "margin", "cost_aware", "mc_dropout"):
        cfg = {"passes": 2} if name == "mc_dropout" else {}
        got = get_strategy(name, **cfg).query(model, pool, unlabeled, np.arange(10), 5, np.random.default_rng(0))
        assert len(set(got.tolist())) == 5 and set(got.tolist()) <= set(unlabeled.tolist())


def test_kcenter_with_packaged_minilm_prefers_novel_notes(corpora_dir):
    from clinical_nlp.active import default_embed, get_strategy
    from clinical_nlp.types import AnnotatedNote, Note

    texts = [
        "History of myocardial infarction",
        "Prior myocardial infarction",
        "History of heart attack",
        "Pregnant or breastfeeding women",
        "Platelet count below 100,000",
    ]
    pool = [AnnotatedNote(Note(f"n{i}", t)) for i, t in enumerate(texts)]
    emb = default_embed(texts)
    assert emb.shape[0] == 5 and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    got = get_strategy("kcenter").query(None, pool, [1, 2, 3, 4], [0], 2, np.random.default_rng(0))
    # the near-paraphrases of the labeled note are not picked first
    assert set(got.tolist()) == {3, 4}


def test_al_simulate_warm_start_with_dev_set(tmp_path, corpora_dir):
    """--warm-start continues from the previous round's model; --dev enables early stopping.
    Per-round edits add up to the cumulative count."""
    from clinical_nlp.io.jsonl import read_jsonl, write_jsonl

    docs = read_jsonl(corpora_dir / "chia" / "train.jsonl", allow_empty=True)
    dev, pool = docs[:10], docs[10:]
    write_jsonl(tmp_path / "dev.jsonl", dev)
    write_jsonl(tmp_path / "pool.jsonl", pool)
    out = tmp_path / "curve.json"
    result = runner.invoke(
        app,
        [
            "al",
            "simulate",
            "--pool",
            str(tmp_path / "pool.jsonl"),
            "--eval",
            str(corpora_dir / "chia" / "dev.jsonl"),
            "--dev",
            str(tmp_path / "dev.jsonl"),
            "--warm-start",
            "--strategy",
            "entropy",
            "--rounds",
            "2",
            "--batch",
            "8",
            "--epochs",
            "3",
            "--labels",
            "Condition,Drug",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    curve = json.loads(out.read_text())
    assert curve["warm_start"] is True and curve["dev"] == "dev.jsonl"
    pts = curve["points"]
    assert [p["n_docs"] for p in pts] == [8, 16, 24]
    assert np.cumsum([p["round_edits"] for p in pts]).tolist() == [p["edits"] for p in pts]
    assert pts[-1]["f1"] > 0.0
