"""``clinical-nlp train entities`` and ``models list`` on the bundled Chia sample."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clinical_nlp.cli.app import app
from clinical_nlp.errors import ConfigError
from clinical_nlp.io.jsonl import read_jsonl
from clinical_nlp.models.entities import DEFAULT_LABELS, load_entity_model

pytestmark = pytest.mark.integration


def test_train_entities_cli_writes_model_dir_and_registry(corpora_dir, tmp_path):
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "proj", name="t")
    out = project.path("models", "chia-v1")
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            "entities",
            "--train",
            str(corpora_dir / "chia" / "train.jsonl"),
            "--dev",
            str(corpora_dir / "chia" / "dev.jsonl"),
            "--output",
            str(out),
            "--kind",
            "spacy",
            "--epochs",
            "6",
            "--seed",
            "1",
            "--project-dir",
            str(project.root),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "dev strict micro-F1" in res.output
    meta = json.loads((out / "model.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert meta["labels"] == list(DEFAULT_LABELS) and meta["kind"] == "spacy"
    assert len(meta["data_hash"]) == 64 and meta["guideline_version"]
    assert meta["config"]["seed"] == 1 and meta["config"]["epochs"] == 6
    assert meta["span_policy"]["discontinuous_to_outer"] >= 0 and meta["span_policy"]["kept"] > 500
    assert metrics["dev"]["strict"]["micro"]["f1"] > 0.15  # learns something in 6 epochs on 79 docs

    dev = read_jsonl(corpora_dir / "chia" / "dev.jsonl", allow_empty=True)
    model = load_entity_model(out)
    preds = model.predict([d.note for d in dev if d.text])
    assert sum(len(p) for p in preds) > 0
    for doc, spans in zip([d for d in dev if d.text], preds):
        for s in spans:
            assert doc.text[s.start : s.end] == s.text and s.label in DEFAULT_LABELS

    listed = runner.invoke(app, ["models", "list", "--project-dir", str(project.root), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert rows[0]["version"] == meta["version"] and rows[0]["registered"] is True


@pytest.mark.slow
def test_train_entities_default_ensemble_then_preannotate(corpora_dir, tmp_path):
    """The default kind (ensemble: spaCy tagger + MiniLM) trains, saves both members, and
    `preannotate --model` uses it; predicted spans carry the ensemble's provenance."""
    out = tmp_path / "ens"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            "entities",
            "--train",
            str(corpora_dir / "chia" / "train.jsonl"),
            "--dev",
            str(corpora_dir / "chia" / "dev.jsonl"),
            "--output",
            str(out),
            "--epochs",
            "4",
            "--transformer-epochs",
            "1",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "model.json").read_text())
    assert meta["kind"] == "ensemble" and 0.3 <= meta["ensemble_weight"] <= 0.8
    assert (out / "members" / "spacy" / "model.json").exists()
    assert (out / "members" / "transformer" / "transformer").is_dir()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"strict", "strict_outer", "overlap"} <= set(metrics["dev"])
    notes = tmp_path / "notes.jsonl"
    notes.write_text(
        '{"id": "n1", "text": "No history of diabetes mellitus. Taking metformin 500 mg daily."}\n'
        '{"id": "n2", "text": "Denies chest pain."}\n',
        encoding="utf-8",
    )
    pre = tmp_path / "pre.jsonl"
    res = runner.invoke(app, ["preannotate", "--model", str(out), "--input", str(notes), "--output", str(pre)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in pre.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["n1", "n2"] and rows[0]["spans"]
    for row in rows:
        for s in row["spans"]:
            assert row["text"][s["start"] : s["end"]] == s["text"]
            if s["source"].startswith("model:"):
                assert s["source"].startswith("model:entities-ensemble@")


def test_train_entities_cli_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "abc", "spans": [{"start": 0, "end": 9, "label": "Drug"}]}\n')
    runner = CliRunner()
    res = runner.invoke(
        app, ["train", "entities", "--train", str(bad), "--output", str(tmp_path / "m"), "--no-progress"]
    )
    assert res.exit_code != 0
    assert "bad.jsonl:1" in str(res.exception) or "bad.jsonl:1" in res.output
    assert not (tmp_path / "m").exists()


def test_train_entities_cli_partial_labels_width_and_depth(corpora_dir, tmp_path):
    """``--partial`` notes (marked findings) train the spaCy kind beside the gold; ``--width`` and
    ``--depth`` shape its CNN; a transformer with ``--partial`` is refused (a ConfigError: exit code 2)."""
    partial = tmp_path / "findings.jsonl"
    rows = [
        {"id": "p1", "text": "No WHEEZES, rales or rhonchi.", "spans": [{"start": 3, "end": 10, "label": "Finding"}]},
        {"id": "p2", "text": "Mild cardiomegaly.", "spans": [{"start": 5, "end": 17, "label": "Finding"}]},
    ]
    partial.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    common = ["train", "entities", "--train", str(corpora_dir / "chia" / "train.jsonl"), "--partial", str(partial)]
    out = tmp_path / "m"
    res = CliRunner().invoke(
        app,
        [*common, "--output", str(out), "--kind", "spacy", "--epochs", "2", "--width", "48", "--depth", "2"]
        + ["--no-static-vectors", "--no-progress"],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "model.json").read_text())
    assert meta["n_partial_docs"] == 2 and len(meta["partial_hash"]) == 64
    assert meta["config"]["width"] == 48 and meta["config"]["depth"] == 2
    bad = CliRunner().invoke(app, [*common, "--output", str(tmp_path / "t"), "--kind", "transformer", "--no-progress"])
    assert isinstance(bad.exception, ConfigError) and "spaCy kind only" in str(bad.exception)  # main(): exit 2
    assert not (tmp_path / "t").exists()


def test_nothing_to_learn_or_a_dev_set_of_training_notes_is_refused(corpora_dir, tmp_path):
    from clinical_nlp.errors import InputFormatError

    chia = corpora_dir / "chia" / "dev.jsonl"
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"id": "a", "text": "No finding here.", "spans": []}) + "\n")
    runner = CliRunner()
    cases = [
        (["--train", str(bare)], "no span to learn"),
        (["--train", str(chia), "--labels", "Nope"], r"no span to learn of the labels \['Nope'\]"),
        (["--train", str(chia), "--dev", str(chia)], "every dev note is also a training note"),
    ]
    for args, message in cases:
        out = tmp_path / "model"
        res = runner.invoke(app, ["train", "entities", *args, "--output", str(out), "--epochs", "1"])
        assert isinstance(res.exception, InputFormatError), res.output
        assert __import__("re").search(message, str(res.exception)) and not out.exists()
