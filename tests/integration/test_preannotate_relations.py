"""preannotate --relations: the shipped entity model's spans, linked by a relation model trained on Chia."""

from __future__ import annotations

import json

import pytest

from clinical_nlp.config import load_label_schema
from clinical_nlp.errors import ConfigError
from clinical_nlp.models.relations import train_relations
from clinical_nlp.scale import preannotate_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def relation_model(tmp_path_factory, corpora_dir):
    read = lambda name: [json.loads(x) for x in (corpora_dir / "chia" / name).read_text().splitlines()]  # noqa: E731
    model, _ = train_relations(read("train.jsonl"), read("dev.jsonl"))
    return model.save(tmp_path_factory.mktemp("relm") / "m").parent


def test_rows_get_span_ids_and_allowed_relations(tmp_path, relation_model):
    notes = tmp_path / "notes.jsonl"
    texts = ["HbA1c > 7% within the last 6 months", "history of stroke or myocardial infarction", "no fever"]
    notes.write_text("".join(json.dumps({"id": f"n{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "pre.jsonl"
    preannotate_file(notes, out, progress=False, relation_model=relation_model)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["n0", "n1", "n2"]
    schema = load_label_schema()
    linked = 0
    for r in rows:
        spans = {s["id"]: s for s in r["spans"]}
        assert len(spans) == len(r["spans"])  # every span has its own id
        for link in r.get("relations", []):
            head, tail = spans[link["arg1"]], spans[link["arg2"]]
            assert schema.relation(link["type"]).allows(head["label"], tail["label"])
            assert 0.0 < link["score"] <= 1.0
            linked += 1
    first = {d["id"]: d for d in rows[0]["spans"]}
    pairs = {(first[x["arg1"]]["text"], x["type"]) for x in rows[0].get("relations", [])}
    assert ("HbA1c", "Has_value") in pairs and linked >= 2


def test_a_bad_relation_model_fails_before_any_work(tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "n0", "text": "no fever"}) + "\n")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "relations.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a relation model"):
        preannotate_file(notes, tmp_path / "out.jsonl", progress=False, relation_model=tmp_path / "m")
    assert not (tmp_path / "out.jsonl").exists()


def test_the_shipped_relation_model_links_a_criterion(tmp_path):
    """`preannotate --relations default`: the model `make model` builds (Chia train, choices on tune trials)."""
    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app

    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "n0", "text": "HbA1c > 7% within the last 6 months"}) + "\n")
    out = tmp_path / "pre.jsonl"
    res = CliRunner().invoke(app, ["preannotate", "-i", str(notes), "-o", str(out), "--relations", "default"])
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    spans = {s["id"]: s["text"] for s in row["spans"]}
    assert ("Has_value", "HbA1c") in {(r["type"], spans[r["arg1"]]) for r in row["relations"]}


def test_damaged_weights_are_a_config_error(tmp_path, relation_model):
    import shutil

    from clinical_nlp.models.relations import load_relation_model

    copy = tmp_path / "m"
    shutil.copytree(relation_model, copy)
    (copy / "relations.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a relation model"):
        load_relation_model(copy)


def test_relations_without_model_uses_the_shipped_one(tmp_path):
    """`relations` with no --model (or `--model default`) links given spans with the shipped model."""
    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app

    text = "HbA1c > 7% within the last 6 months"
    spans = [
        {"id": "T1", "start": 0, "end": 5, "label": "Measurement"},
        {"id": "T2", "start": 6, "end": 10, "label": "Value"},
    ]
    notes = tmp_path / "rows.jsonl"
    notes.write_text(json.dumps({"id": "r0", "text": text, "spans": spans}) + "\n")
    for extra in ([], ["--model", "default"]):
        out = tmp_path / "rel.jsonl"
        res = CliRunner().invoke(app, ["relations", "-i", str(notes), "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
        (row,) = [json.loads(line) for line in out.read_text().splitlines()]
        assert {(r["type"], r["arg1"], r["arg2"]) for r in row["relations"]} == {("Has_value", "T1", "T2")}
