"""Export from a project store: QA gate, audit entry, manifest versions; CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clinical_nlp.audit import AuditLog
from clinical_nlp.errors import PolicyError
from clinical_nlp.export import export_from_store
from clinical_nlp.io.jsonl import read_jsonl
from clinical_nlp.project import init_project
from clinical_nlp.qa import sampled
from clinical_nlp.store import Store
from clinical_nlp.types import Annotation, Note, Span

pytestmark = pytest.mark.integration


def _project(tmp_path, label):
    project = init_project(tmp_path / "proj")
    store = Store(project.store_url)
    gv = project.guideline().version
    ids = [f"n{i}" for i in range(40) if not sampled(f"n{i}", label, 0.1)][:6]
    store.add_notes([Note(i, "Patient reports chest pain today.", {"patient": f"p{k % 3}"}) for k, i in enumerate(ids)])
    rows = {}
    for i in ids:
        rows |= store.save_annotation(
            Annotation(
                i, "adjudicator", (Span(16, 26, label, "chest pain"),), guideline_version=gv, model_version="m@1"
            ),
            kind="gold",
        )
    AuditLog(store).append("ingest", actor="test", details={"notes": len(ids)}, rows=rows)
    return project, store, gv


def test_store_export_records_audit_and_versions(tmp_path):
    project, store, gv = _project(tmp_path, "Observation")
    out = tmp_path / "export"
    manifest = export_from_store(project, out, "jsonl", actor="lead")
    assert manifest["documents"] == 6 and manifest["labels"] == {"Observation": 6}
    assert manifest["guideline_version"] == gv and manifest["model_versions"] == ["m@1"]
    entries = AuditLog(store).entries("export")
    assert entries and entries[-1].details["content_hash"] == manifest["content_hash"]
    assert manifest["audit_head"] == AuditLog(store).entries()[-2].hash  # the head before the export entry
    assert entries[-1].details["audit_head"] == manifest["audit_head"]


def test_one_document_per_note_adjudicated_first(tmp_path):
    project, store, gv = _project(tmp_path, "Observation")
    first = store.notes()[0].id
    rows = store.save_annotation(
        Annotation(first, "dr_x", (Span(0, 7, "Observation", "Patient"),), source="adjudication", guideline_version=gv),
        kind="gold",
    )
    AuditLog(store).append("adjudicate", actor="dr_x", details={"item": first}, rows=rows)
    manifest = export_from_store(project, tmp_path / "export", "jsonl")
    docs = read_jsonl(tmp_path / "export" / "train.jsonl", allow_empty=True)
    if (tmp_path / "export" / "dev.jsonl").exists():
        docs += read_jsonl(tmp_path / "export" / "dev.jsonl", allow_empty=True)
    assert manifest["documents"] == len(docs) == 6 == len({d.id for d in docs})
    assert next(d for d in docs if d.id == first).spans[0].text == "Patient"  # the expert's decision wins


def test_export_refuses_open_adjudication_and_tampered_rows(tmp_path):
    from sqlalchemy import text

    from clinical_nlp.errors import AuditIntegrityError
    from clinical_nlp.services.adjudication import QueueCandidate, build_queue

    project, store, _ = _project(tmp_path, "Observation")
    first = store.notes()[0].id
    build_queue(store, [QueueCandidate(first, "text", {"span_f1": 0.2})], expert="dr_x")
    with pytest.raises(PolicyError, match=f"1 note\\(s\\) still await adjudication: {first}"):
        export_from_store(project, tmp_path / "export", "jsonl")
    assert not (tmp_path / "export").exists()
    manifest = export_from_store(project, tmp_path / "export", "jsonl", override="pilot export for the IRB")
    assert manifest["documents"] == 6
    assert AuditLog(store).entries("override")[-1].details["reason"] == "pilot export for the IRB"
    with store.engine.begin() as con:  # someone with database access edits a gold label
        con.execute(text("UPDATE annotations SET payload = '[]' WHERE item = :i"), {"i": first})
    with pytest.raises(AuditIntegrityError, match=f"gold\\|0\\|adjudicator\\|{first}: content differs"):
        export_from_store(project, tmp_path / "export2", "jsonl", override="again")
    assert not (tmp_path / "export2").exists()


def test_qa_gate_blocks_unreviewed_safety_critical_labels(tmp_path):
    project, store, _ = _project(tmp_path, "Drug")  # Drug: review_rate 1.0
    with pytest.raises(PolicyError, match="Drug"):
        export_from_store(project, tmp_path / "export", "jsonl")
    assert not (tmp_path / "export").exists()
    assert not AuditLog(store).entries("export")


def test_cli_export_and_bad_input(tmp_path, corpora_dir):
    out = tmp_path / "hf"
    init_project(tmp_path / "p")
    cmd = [
        sys.executable,
        "-m",
        "clinical_nlp.cli.app",
        "export",
        "--format",
        "hf",
        "--output",
        str(out),
        "--input",
        str(corpora_dir / "chia" / "dev.jsonl"),
        "--project-dir",
        str(tmp_path / "p"),
        "--unknown-labels",
        "keep",  # Chia's own labels (Mood, Scope …) are not the default schema's
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2 and "export refused" in res.stderr and "Drug" in res.stderr  # no QA reviews yet
    assert not out.exists()
    res = subprocess.run([*cmd, "--override", "public corpus"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["documents"] == 30
    manifest = json.loads((out / "manifest.json").read_text())
    outside = manifest["labels_outside_schema"]
    assert outside["policy"] == "keep" and outside["spans"]["Mood"] == manifest["labels"]["Mood"] > 0
    assert "Condition" not in outside["spans"]
    assert {k: v for k, v in manifest["read_back"].items() if v} == {}  # hf holds every span and link
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "abc", "spans": [{"start": 0, "end": 9, "label": "X"}]}\n')
    cmd[7], cmd[9] = str(tmp_path / "o2"), str(bad)
    assert cmd[6] == "--output" and cmd[8] == "--input"
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2 and "bad.jsonl:1" in res.stderr
    assert not (tmp_path / "o2").exists()


def test_gold_relations_reach_every_export_format(tmp_path):
    """Relations of the gold (a consensus or an expert decision) are in the JSONL, BRAT and spaCy exports."""
    from clinical_nlp.io.brat import read_brat

    project = init_project(tmp_path / "proj")
    store = Store(project.store_url)
    gv = project.guideline().version
    text = "HbA1c > 7% within 6 months"
    spans = (
        Span(0, 5, "Measurement", "HbA1c", id="T1"),
        Span(6, 10, "Value", "> 7%", id="T2"),
        Span(11, 26, "Temporal", "within 6 months", id="T3"),
    )
    links = ({"type": "Has_value", "arg1": "T1", "arg2": "T2"}, {"type": "Has_temporal", "arg1": "T1", "arg2": "T3"})
    ids = [f"n{i}" for i in range(40) if not any(sampled(f"n{i}", s.label, 0.1) for s in spans)][:2]
    store.add_notes([Note(i, text) for i in ids])
    rows = {}
    for i in ids:
        ann = Annotation(i, "consensus", spans, source="consensus:majority", guideline_version=gv, relations=links)
        rows |= store.save_annotation(ann, kind="gold")
    AuditLog(store).append("round", actor="test", details={"step": "consensus"}, rows=rows)
    assert store.annotations(kind="gold")[0].relations == links

    export_from_store(project, tmp_path / "jsonl", "jsonl", actor="lead")
    (doc, *_) = read_jsonl(next((tmp_path / "jsonl").glob("*.jsonl")))
    assert [dict(r) for r in doc.relations] == [dict(r) for r in links]
    export_from_store(project, tmp_path / "brat", "brat", actor="lead")
    ann_file = next((tmp_path / "brat").rglob("*.ann"))
    assert sum(1 for line in ann_file.read_text().splitlines() if line.startswith("R")) == 2
    again = read_brat(ann_file.parent)
    assert {(r["type"]) for d in again for r in d.relations} == {"Has_value", "Has_temporal"}
