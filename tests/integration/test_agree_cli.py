"""``clinical-nlp agree`` and ``adjudicate`` end to end on a LABELS.jsonl built from the bundled corpus."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clinical_nlp.cli.app import app
from clinical_nlp.config import load_project
from clinical_nlp.io.jsonl import iter_json_rows
from clinical_nlp.store import Store

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


def test_agree_with_relations_on_chia_rows(corpora_dir, tmp_path):
    """Two annotators on real Chia criteria: bob drops every third link; relation F1, the per-type table
    and the consensus gold's links (kept only where both linked) follow from that."""
    rows, dropped, total = [], 0, 0
    for _, r in iter_json_rows(corpora_dir / "chia" / "dev.jsonl"):
        rels = [x for x in r.get("relations") or [] if "arg1" in x]
        if not rels or any("fragments" in s for s in r["spans"]):
            continue
        spans = [{k: s[k] for k in ("id", "start", "end", "label")} for s in r["spans"]]
        bob = [x for k, x in enumerate(rels) if k % 3 != 2]
        dropped, total = dropped + len(rels) - len(bob), total + len(rels)
        rows.append({"id": r["id"], "annotator": "ann", "text": r["text"], "spans": spans, "relations": rels})
        rows.append({"id": r["id"], "annotator": "bob", "text": r["text"], "spans": spans, "relations": bob})
    labels, gold, out = tmp_path / "L.jsonl", tmp_path / "G.jsonl", tmp_path / "R.json"
    labels.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    res = CliRunner().invoke(app, ["agree", "-i", str(labels), "-o", str(out), "--gold", str(gold), "--n-boot", "0"])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    kept = total - dropped
    assert rep["overall"]["relation_f1"] == pytest.approx(2 * kept / (total + kept))
    assert "Relation agreement" in res.output and "Has_value" in rep["relations"]["per_type"]
    # a link one of two annotators made is no majority; consensus keeps one span per overlapping unit, and a
    # link to a span that lost its unit goes with it
    by_note = {r["id"]: r for r in rows if r["annotator"] == "bob"}
    want = got = 0
    for _, g in iter_json_rows(gold):
        have = {(s["start"], s["end"], s["label"]) for s in g["spans"]}
        spans = {s["id"]: (s["start"], s["end"], s["label"]) for s in by_note[g["id"]]["spans"]}
        want += sum(1 for x in by_note[g["id"]]["relations"] if {spans[x["arg1"]], spans[x["arg2"]]} <= have)
        got += len(g.get("relations", []))
    assert got == want and 0.8 * kept < got <= kept


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


def _decide(cli, project, item, decision, *, expert="dr_x", reason="clear negation"):
    return cli(
        [
            "adjudicate",
            "decide",
            "--item",
            item,
            "--expert",
            expert,
            "--reason",
            reason,
            "--decision",
            decision,
            "--project",
            str(project),
        ],
    )


def test_adjudicate_queue_list_decide(labels_file, tmp_path, cli):
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
    store = Store(load_project(project).store_url)
    text = store.get_note(first).text
    # an unregistered expert is refused, as qa review refuses one
    res = _decide(cli, project, first, '[{"start": 0, "end": 1, "label": "Condition"}]')
    assert res.exit_code == 2 and "'dr_x' is not registered" in res.output
    reg = ["annotators", "add", "dr_x", "--role", "expert", "--license-id", "MD-1", "--project-dir", str(project)]
    assert runner.invoke(app, reg).exit_code == 0
    before = _store_dump(store)
    bad = [
        ('[{"start": 5000, "end": 5010, "label": "Condition"}]', "ends beyond the text"),
        ('[{"start": 4, "end": 2, "label": "Condition"}]', "invalid offsets [4, 2)"),
        ('[{"start": 0, "end": 1, "label": "Tumour"}]', "'Tumour' is not in the label schema"),
        ('[{"start": 0, "end": 1, "label": "Condition", "negation": "maybe"}]', "negation='maybe' is not one of"),
        ('[{"start": 0, "end": 1, "label": "Value", "negation": "negated"}]', "'negation' is not allowed on 'Value'"),
        ('[{"start": 0, "end": 1, "label": "Condition", "text": "zzz"}]', "but claims 'zzz'"),
        ('{"start": 0}', "expected a list of spans"),
        ('[{"start": 0, "end": 1, "label": "Condition"', "not valid JSON"),
    ]
    for decision, message in bad:
        res = _decide(cli, project, first, decision)
        assert res.exit_code == 2 and message in res.output, (decision, res.output)
    assert _store_dump(store) == before  # a refused decision changes nothing
    assert _decide(cli, project, first, '[{"start": 0, "end": 1, "label": "Condition"}]').exit_code == 0
    res = runner.invoke(app, ["adjudicate", "list", "--json", "--project", str(project)])
    assert first not in {i["item"] for i in json.loads(res.output)}
    gold = store.annotations(kind="gold", item=first)
    assert len(gold) == 1 and gold[0].spans[0].text == text[0:1]
    assert gold[0].guideline_version == load_project(project).guideline().version
    # a second decision amends the first: the newer is gold, both are kept and audited
    res = _decide(cli, project, first, '[{"start": 0, "end": 2, "label": "Condition"}]', reason="wider span")
    assert res.exit_code == 0, res.output
    gold = store.annotations(kind="gold", item=first)
    assert len(gold) == 1 and (gold[0].spans[0].start, gold[0].spans[0].end) == (0, 2)
    res = runner.invoke(app, ["adjudicate", "history", "--item", first, "--project", str(project)])
    history = [json.loads(line) for line in res.output.splitlines()]
    assert [h["reason"] for h in history] == ["clear negation", "wider span"]
    assert history[1]["supersedes"] == history[0]["id"]
    res = runner.invoke(app, ["audit", "verify", "--project-dir", str(project)])
    assert res.exit_code == 0, res.output


def _store_dump(store):
    """Every row of every table, for before/after comparisons."""
    from sqlalchemy import text as sql

    with store.engine.connect() as conn:
        names = [r[0] for r in conn.execute(sql("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"))]
        return {n: sorted(map(tuple, conn.execute(sql(f'SELECT * FROM "{n}"')))) for n in names}


def test_agree_gold_carries_only_the_attributes_each_label_has_so_it_can_be_ingested(tmp_path, cli):
    """Before: every consensus span carried negation/temporality/experiencer (a pull wrote defaults on a
    Temporal or Value span too), and ingesting the --gold file was refused for 'attribute not allowed'."""
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "p")
    text = "No fever since Monday, 5 mg."
    defaults = {"negation": "affirmed", "temporality": "recent", "experiencer": "patient"}
    spans = [
        {"start": 3, "end": 8, "label": "Condition", **defaults, "negation": "negated"},
        {"start": 9, "end": 21, "label": "Temporal", **defaults},
        {"start": 23, "end": 27, "label": "Value", **defaults},
    ]
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(json.dumps({"id": "n1", "annotator": a, "text": text, "spans": spans}) + "\n" for a in "ab")
    )
    gold = tmp_path / "gold.jsonl"
    res = cli(["agree", "-i", str(labels), "-o", str(tmp_path / "r.json"), "--gold", str(gold), "--n-boot", "0"])
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in gold.read_text().splitlines()]
    assert {
        s["label"]: sorted(k for k in s if k in ("negation", "temporality", "experiencer")) for s in row["spans"]
    } == {
        "Condition": ["experiencer", "negation", "temporality"],
        "Temporal": [],
        "Value": [],
    }
    res = cli(["ingest", "-i", str(gold), "--annotator", "consensus", "--project-dir", str(project.root)])
    assert res.exit_code == 0, res.output
    assert len(Store(project.store_url).annotations(kind="gold")) == 1
