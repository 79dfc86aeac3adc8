"""Pre-annotation on a real Dask LocalCluster: exactly-once in input order, retries, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cloudpickle
import pytest

from clinical_nlp.errors import InputFormatError
from clinical_nlp.scale import SPAN_FIELDS, PartitionError, preannotate_file, run_partitioned

pytestmark = pytest.mark.integration
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def notes20(corpora_dir, tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in (corpora_dir / "notes" / "synthea_notes.jsonl").read_text().splitlines()[:20]]
    path = tmp_path_factory.mktemp("n") / "notes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_real_pipeline_two_workers_contract(notes20, tmp_path):
    out = tmp_path / "out.jsonl"
    stats = preannotate_file(notes20, out, workers=2, partition_size=3, progress=False)
    assert stats.notes == 20 and stats.workers == 2 and stats.partitions == 7
    assert _ids(out) == _ids(notes20)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    inp = [json.loads(line) for line in notes20.read_text().splitlines()]
    assert sum(len(r["spans"]) for r in rows) > 20
    for r, i in zip(rows, inp):
        assert r["text"] == i["text"] and r["patient"] == i["patient"]
        assert r["model_version"].startswith("clinical-nlp-pipeline@")
        for s in r["spans"]:
            assert set(SPAN_FIELDS) <= set(s)
            assert r["text"][s["start"] : s["end"]] == s["text"]


class Flaky:
    """Fails the first attempt of partition containing ``bad_id`` (a marker file records the failure)."""

    def __init__(self, marker: str, bad_id: str, always: bool = False):
        self.marker, self.bad_id, self.always = marker, bad_id, always

    def __call__(self, rows):
        if any(r["id"] == self.bad_id for r in rows):
            m = Path(self.marker)
            if self.always or not m.exists():
                m.write_text("failed")
                raise RuntimeError("transient worker failure")
        return [{"id": r["id"], "n": len(r["text"])} for r in rows]


@pytest.mark.parametrize("workers", [1, 2])
def test_transient_failure_is_retried_exactly_once(notes20, tmp_path, workers):
    ids = _ids(notes20)
    out = tmp_path / "o.jsonl"
    stats = run_partitioned(
        notes20, out, Flaky(str(tmp_path / "m"), ids[7]), workers=workers, partition_size=2, progress=False
    )
    assert stats.retries == 1 and stats.retried_partitions == {3: 1}
    assert _ids(out) == ids  # every note once, input order


def test_permanent_failure_reports_partition_and_leaves_no_output(notes20, tmp_path):
    ids = _ids(notes20)
    out = tmp_path / "o.jsonl"
    with pytest.raises(PartitionError, match=r"partition 2 \(input rows 5-6\) failed after 2 attempt"):
        run_partitioned(
            notes20,
            out,
            Flaky(str(tmp_path / "m"), ids[5], always=True),
            workers=2,
            partition_size=2,
            retries=1,
            progress=False,
        )
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_bad_row_clear_error_no_partial_output(notes20, tmp_path):
    lines = notes20.read_text().splitlines()
    lines[12] = json.dumps({"id": "broken", "patient": "p"})
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.jsonl"
    with pytest.raises(InputFormatError, match=r"bad.jsonl:13: row 'broken' has no 'text'"):
        run_partitioned(bad, out, Flaky(str(tmp_path / "m"), "none"), workers=1, partition_size=2, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".o.jsonl*"))


def test_in_process_and_parquet_round_trip(notes20, tmp_path):
    import pandas as pd

    pq_in = tmp_path / "in.parquet"
    pd.read_json(notes20, lines=True).to_parquet(pq_in)
    out = tmp_path / "o.parquet"
    stats = run_partitioned(pq_in, out, Flaky(str(tmp_path / "m"), "none"), partition_size=6, progress=False)
    assert stats.workers == 0 and stats.notes == 20
    assert list(pd.read_parquet(out)["id"]) == _ids(notes20)


def test_suggestion_controls_labels_and_min_score(tmp_path):
    """--labels keeps only those labels; --min-score drops spans scored below (Temporal spans score 0.8).

    Rules only (``--no-model``): their spans and scores do not move when the shipped model is retrained.
    """
    import json

    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app

    notes = tmp_path / "n.jsonl"
    notes.write_text(json.dumps({"id": "a", "text": "No fever since 2 days. Aspirin daily."}) + "\n")
    runner = CliRunner()

    def labels_of(args):
        out = tmp_path / "o.jsonl"
        res = runner.invoke(app, ["preannotate", "-i", str(notes), "-o", str(out), "--no-model", *args])
        assert res.exit_code == 0, res.output
        return sorted({s["label"] for s in json.loads(out.read_text())["spans"]})

    everything = labels_of([])
    assert "Temporal" in everything and "Condition" in everything
    assert labels_of(["--labels", "Condition"]) == ["Condition"]
    assert "Temporal" not in labels_of(["--min-score", "0.85"])
    bad = runner.invoke(app, ["preannotate", "-i", str(notes), "-o", str(tmp_path / "x.jsonl"), "--labels", "Tumour"])
    assert bad.exit_code != 0 and "not in the label schema" in str(bad.exception)


def _shipped_model():
    from clinical_nlp.models.default_entities import default_entity_model_dir

    return default_entity_model_dir()


@pytest.mark.skipif(_shipped_model() is None, reason="run `make model` to build the shipped entity model")
def test_shipped_entity_model_is_the_default_and_no_model_means_rules(tmp_path):
    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app

    text = (
        "HISTORY OF PRESENT ILLNESS: Headache with photophobia for three days, no vomiting. "
        "She takes Tylenol 500 mg.\nFAMILY HISTORY: Grandmother had a cerebral aneurysm.\n"
    )
    notes = tmp_path / "n.jsonl"
    notes.write_text(json.dumps({"id": "a", "text": text}) + "\n" + json.dumps({"id": "b", "text": ""}) + "\n")
    version = json.loads((_shipped_model() / "model.json").read_text())["version"]
    runner = CliRunner()

    def run(*args):
        out = tmp_path / "o.jsonl"
        res = runner.invoke(app, ["preannotate", "-i", str(notes), "-o", str(out), *args])
        assert res.exit_code == 0, res.output
        return [json.loads(line) for line in out.read_text().splitlines()]

    with_model = run()
    assert [r["id"] for r in with_model] == ["a", "b"] and with_model[1]["spans"] == []
    assert with_model[0]["model_version"].endswith(f"+ner:{version}")
    found = {s["text"].lower(): s for s in with_model[0]["spans"]}
    assert any("entity:" in s["source"] for s in with_model[0]["spans"])
    assert found["cerebral aneurysm"]["experiencer"] == "family"  # the FAMILY HISTORY section
    assert found["vomiting"]["negation"] == "negated"
    assert not any("history" in t for t in found), sorted(found)  # nothing in the headers, Temporal included
    rules = run("--no-model")
    assert "+ner:" not in rules[0]["model_version"]
