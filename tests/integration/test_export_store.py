"""Export from a project store: QA gate, audit entry, manifest versions; CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clinical_nlp.audit import AuditLog
from clinical_nlp.errors import PolicyError
from clinical_nlp.export import export_from_store
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
    for i in ids:
        store.save_annotation(
            Annotation(
                i, "adjudicator", (Span(16, 26, label, "chest pain"),), guideline_version=gv, model_version="m@1"
            ),
            kind="gold",
        )
    return project, store, gv


def test_store_export_records_audit_and_versions(tmp_path):
    project, store, gv = _project(tmp_path, "Observation")
    out = tmp_path / "export"
    manifest = export_from_store(project, out, "jsonl", actor="lead")
    assert manifest["documents"] == 6 and manifest["labels"] == {"Observation": 6}
    assert manifest["guideline_version"] == gv and manifest["model_versions"] == ["m@1"]
    entries = AuditLog(store).entries("export")
    assert entries and entries[-1].details["content_hash"] == manifest["content_hash"]


def test_qa_gate_blocks_unreviewed_safety_critical_labels(tmp_path):
    project, store, _ = _project(tmp_path, "Drug")  # Drug: review_rate 1.0
    with pytest.raises(PolicyError, match="Drug"):
        export_from_store(project, tmp_path / "export", "jsonl")
    assert not (tmp_path / "export").exists()
    assert not AuditLog(store).entries("export")


def test_cli_export_and_bad_input(tmp_path, corpora_dir):
    out = tmp_path / "hf"
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
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["documents"] == 30
    assert (out / "manifest.json").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "abc", "spans": [{"start": 0, "end": 9, "label": "X"}]}\n')
    cmd[7], cmd[9] = str(tmp_path / "o2"), str(bad)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2 and "bad.jsonl:1" in res.stderr
    assert not (tmp_path / "o2").exists()
