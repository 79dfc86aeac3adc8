"""``clinical-nlp agree`` and ``adjudicate`` end to end on a LABELS.jsonl built from the bundled corpus."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clinical_nlp.cli.app import app
from clinical_nlp.io.jsonl import iter_json_rows

pytestmark = pytest.mark.integration


@pytest.fixture()
def labels_file(corpora_dir, tmp_path):
    """Two annotators on 20 negex_context notes: 'bob' flips negation on every 4th note and trims a span."""
    rows = []
    for n, (_, r) in enumerate(iter_json_rows(corpora_dir / "negex_context" / "sample.jsonl")):
        if n == 20:
            break
        span = {
            "start": r["start"],
            "end": r["end"],
            "label": "Condition",
            "negation": r["negation"],
            "temporality": r["temporality"],
            "experiencer": r["experiencer"],
        }
        rows.append({"id": r["id"], "annotator": "ann", "text": r["text"], "spans": [span]})
        bob = dict(span)
        if n % 4 == 0:
            bob["negation"] = "affirmed" if span["negation"] == "negated" else "negated"
        if n == 5:
            bob["end"] -= 1
        rows.append({"id": r["id"], "annotator": "bob", "text": r["text"], "spans": [bob]})
    path = tmp_path / "LABELS.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    return path


def test_agree_writes_report_and_plot(labels_file, tmp_path):
    out, png = tmp_path / "REPORT.json", tmp_path / "agree.png"
    res = CliRunner().invoke(app, ["agree", "--input", str(labels_file), "--output", str(out), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["overall"]["span_f1_exact"] == pytest.approx(19 / 20)
    assert rep["overall"]["span_f1_overlap"] == 1.0
    lo, hi = rep["overall"]["span_f1_exact_ci95"]
    assert lo <= rep["overall"]["span_f1_exact"] <= hi == 1.0 and lo < 1.0
    assert rep["labels"]["Condition"]["span_f1_exact"] == pytest.approx(19 / 20)
    neg = rep["attributes"]["negation"]
    assert neg["n"] == 19 and neg["cohen_kappa"] < 0.8 and neg["krippendorff_alpha"] < 0.8
    assert png.stat().st_size > 1000
    assert "span F1" in res.output


def test_agree_writes_consensus_gold(labels_file, tmp_path):
    gold = tmp_path / "GOLD.jsonl"
    res = CliRunner().invoke(
        app,
        [
            "agree",
            "--input",
            str(labels_file),
            "--output",
            str(tmp_path / "r.json"),
            "--gold",
            str(gold),
            "--n-boot",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [r for _, r in iter_json_rows(gold)]
    assert len(rows) == 20
    # two annotators: a span survives only when both marked it with the same label (strict majority)
    assert all(len(r["spans"]) == 1 and r["spans"][0]["label"] == "Condition" for r in rows)


def test_agree_bad_input_exit_2_and_no_output(tmp_path):
    bad = tmp_path / "LABELS.jsonl"
    bad.write_text('{"id": "n1", "annotator": "a", "text": "abc", "spans": [{"start": 1, "end": 9, "label": "X"}]}\n')
    out = tmp_path / "REPORT.json"
    import sys

    from clinical_nlp.cli.app import main

    argv = sys.argv
    sys.argv = ["clinical-nlp", "agree", "--input", str(bad), "--output", str(out)]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = argv
    assert exc.value.code == 2
    assert not out.exists()


def test_adjudicate_queue_list_decide(labels_file, tmp_path):
    project = tmp_path / "proj"
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    res = runner.invoke(
        app, ["adjudicate", "queue", "--input", str(labels_file), "--expert", "dr_x", "--project", str(project)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["adjudicate", "list", "--json", "--project", str(project)])
    items = json.loads(res.output)
    assert items and all(i["expert"] == "dr_x" for i in items)
    first = items[0]["item"]
    res = runner.invoke(
        app,
        [
            "adjudicate",
            "decide",
            "--item",
            first,
            "--expert",
            "dr_x",
            "--reason",
            "clear negation",
            "--decision",
            '[{"start": 0, "end": 1, "label": "Condition"}]',
            "--project",
            str(project),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["adjudicate", "list", "--json", "--project", str(project)])
    assert first not in {i["item"] for i in json.loads(res.output)}
