"""The relation classifier: candidates, gold pairs, training, decoding, the CLI contract."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clinical_nlp.errors import InputFormatError
from clinical_nlp.models.relations import candidates, evaluate, fit, gold_pairs, load_relation_model


def _row(i: int, value_first: bool = False) -> dict:
    """'HbA1c > 7% and BMI < 30' with Has_value links; a second line that must not link across."""
    text = f"HbA1c > {7 + i % 3}% and BMI < {30 + i % 5}\nage {18 + i}"
    spans = [
        {"id": "T1", "start": 0, "end": 5, "label": "Measurement"},
        {"id": "T2", "start": 6, "end": text.index("%") + 1, "label": "Value"},
        {"id": "T3", "start": text.index("BMI"), "end": text.index("BMI") + 3, "label": "Measurement"},
        {"id": "T4", "start": text.index("<"), "end": text.index("\n"), "label": "Value"},
        {"id": "T5", "start": text.index("age"), "end": text.index("age") + 3, "label": "Measurement"},
        {"id": "T6", "start": text.index("age") + 4, "end": len(text), "label": "Value"},
    ]
    rels = [{"type": "Has_value", "arg1": a, "arg2": b} for a, b in (("T1", "T2"), ("T3", "T4"), ("T5", "T6"))]
    rels.append({"id": "*1", "type": "AND", "args": ["T1", "T3"]})
    return {"id": f"n{i}", "text": text, "spans": spans, "relations": rels}


def test_gold_pairs_and_candidates_stay_on_one_line():
    row = _row(0)
    assert gold_pairs(row)[("T1", "T3")] == "AND" and gold_pairs(row)[("T5", "T6")] == "Has_value"
    pairs = {(a["id"], b["id"]) for a, b in candidates(row, None)}
    assert ("T1", "T2") in pairs and ("T2", "T1") in pairs
    assert not {p for p in pairs if ("T5" in p or "T6" in p) and p not in {("T5", "T6"), ("T6", "T5")}}


def test_learns_nearest_value_links_and_round_trips(tmp_path):
    rows = [_row(i) for i in range(40)]
    model = fit(rows[:30], 1.0)
    scores = evaluate(model, rows[30:])
    assert scores["modifiers"]["f1"] == 1.0 and scores["per_type"]["Has_value"]["gold"] == 30
    again = load_relation_model(model.save(tmp_path / "m"))
    assert again.predict(rows[30:]) == model.predict(rows[30:])
    (pred,) = model.predict([_row(99)])
    assert {(r["arg1"], r["arg2"]) for r in pred if r["type"] == "Has_value"} == {
        ("T1", "T2"),
        ("T3", "T4"),
        ("T5", "T6"),
    }
    assert all(0.0 < r["score"] <= 1.0 for r in pred)


def test_one_link_per_argument_keeps_each_arguments_best_coordination_link(tmp_path):
    from clinical_nlp.models.relations import _one_per_argument

    def rel(t, a, b, score):
        return {"type": t, "arg1": a, "arg2": b, "score": score}

    links = [rel("OR", "A", "C", 0.6), rel("OR", "B", "C", 0.9), rel("OR", "B", "D", 0.5), rel("AND", "A", "C", 0.4)]
    # C's best incoming OR is from B, B's best outgoing OR goes to C; AND is another type
    assert _one_per_argument(links) == [links[1], links[3]]
    rows = [_row(i) for i in range(40)]
    model = fit(rows[:30], 1.0)
    model.one_per_argument = True
    again = load_relation_model(model.save(tmp_path / "m"))
    assert again.one_per_argument and again.predict(rows[30:]) == model.predict(rows[30:])
    for pred in model.predict(rows[30:]):
        other = [(r["type"], r["arg2"]) for r in pred if r["type"] == "AND"]
        assert len(other) == len(set(other))


def test_calibration_maps_output_scores_only_and_is_fitted_on_dev(tmp_path):
    import numpy as np

    from clinical_nlp.models.relations import fit_calibration

    rows = [_row(i) for i in range(40)]
    model = fit(rows[:30], 1.0)
    before = model.predict(rows[30:])
    table = {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.2, 0.9]}
    model.calibration = table
    after = model.predict(rows[30:])
    assert [[(r["type"], r["arg1"], r["arg2"]) for r in p] for p in after] == [
        [(r["type"], r["arg1"], r["arg2"]) for r in p] for p in before
    ]
    for p, q in zip(before, after, strict=True):
        for r, t in zip(p, q, strict=True):
            assert t["score"] == round(float(np.interp(r["score"], table["x"], table["y"])), 4)
    assert load_relation_model(model.save(tmp_path / "m")).calibration == table
    assert fit_calibration(model, rows[30:]) is None  # every link right: nothing to learn
    wrong = [dict(r, relations=[x for x in r["relations"] if x.get("arg1") != "T1"]) for r in rows[30:]]
    fitted = fit_calibration(model, wrong + rows[30:])  # the T1 links are wrong in half the rows
    assert fitted is not None and fitted["y"] == sorted(fitted["y"]) and 0 < fitted["y"][-1] <= 1


def test_spans_need_ids():
    row = _row(0)
    row["spans"][0].pop("id")
    with pytest.raises(InputFormatError, match="has no 'id'"):
        candidates(row, None)


def test_cli_train_and_predict_contract(tmp_path):
    from clinical_nlp.cli.app import app

    train, dev, inp = tmp_path / "train.jsonl", tmp_path / "dev.jsonl", tmp_path / "in.jsonl"
    train.write_text("".join(json.dumps(_row(i)) + "\n" for i in range(30)))
    dev.write_text("".join(json.dumps(_row(i)) + "\n" for i in range(30, 40)))
    inp.write_text("".join(json.dumps({k: v for k, v in _row(i).items() if k != "relations"}) + "\n" for i in (50, 51)))
    res = CliRunner().invoke(
        app, ["train", "relations", "--train", str(train), "--dev", str(dev), "-o", str(tmp_path / "m")]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{") :])["dev_modifiers"]["f1"] == 1.0
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["relations", "--model", str(tmp_path / "m"), "-i", str(inp), "-o", str(out)])
    assert res.exit_code == 0, res.output
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == ["n50", "n51"] and all(
        set(r) == {"type", "arg1", "arg2", "score"} for g in got for r in g["relations"]
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "text": "abc", "spans": [{"start": 0, "end": 9, "label": "Value"}]}) + "\n")
    res = CliRunner().invoke(app, ["relations", "--model", str(tmp_path / "m"), "-i", str(bad), "-o", str(out)])
    assert isinstance(res.exception, InputFormatError) and "needs an 'id'" in str(res.exception)
    assert out.exists() and len(out.read_text().splitlines()) == 2  # the earlier output is untouched
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"id": "x", "text": "abc", "spans": [{"id": "T1", "start": 0, "end": 3,
                                                                        "label": "Gene"}]}) + "\n")  # fmt: skip
    res = CliRunner().invoke(app, ["relations", "--model", str(tmp_path / "m"), "-i", str(unknown), "-o", str(out)])
    assert res.exit_code == 0 and "not trained on the label(s) Gene" in res.output
    assert json.loads(out.read_text()) == {"id": "x", "relations": []}


def test_cli_train_refuses_no_relations_and_a_dev_set_of_training_rows(tmp_path):
    from clinical_nlp.cli.app import app

    train, bare = tmp_path / "train.jsonl", tmp_path / "bare.jsonl"
    train.write_text("".join(json.dumps(_row(i)) + "\n" for i in range(5)))
    bare.write_text("".join(json.dumps({**_row(i), "relations": []}) + "\n" for i in range(5)))
    for args, message in (
        (["--train", str(bare), "--dev", str(train)], "no relation to learn"),
        (["--train", str(train), "--dev", str(train)], "every dev row is also a training row"),
    ):
        res = CliRunner().invoke(app, ["train", "relations", *args, "-o", str(tmp_path / "m"), "--no-minilm"])
        assert isinstance(res.exception, InputFormatError) and message in str(res.exception), res.output
        assert not (tmp_path / "m").exists()
