"""Dataset report: build it on a small project and render it in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinical_nlp.annotators import Annotator, Registry
from clinical_nlp.cli.app import app
from clinical_nlp.project import init_project
from clinical_nlp.qa import record_review
from clinical_nlp.store import ModelVersionRow, Store
from clinical_nlp.types import Annotation, Note, Span

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1200,1600",
]


def _project(tmp_path):
    project = init_project(tmp_path / "proj")
    store = Store(project.store_url)
    version = project.guideline().version
    store.add_notes(
        [Note(f"n{i}", "Aspirin for chest pain today.", {"patient": f"p{i % 3}"}) for i in range(12)], deidentified=True
    )
    reg = Registry(store)
    reg.add(Annotator("alice", guideline_version=version, hipaa_training="2026-06-01"))
    reg.add(Annotator("bob", guideline_version=version))
    reg.add(Annotator("dr_c", role="expert", license_id="MD-9", guideline_version=version, phi_access=True))
    for i in range(12):
        store.save_annotation(
            Annotation(f"n{i}", "alice", (Span(0, 7, "Drug"), Span(12, 22, "Condition")), guideline_version=version)
        )
        bob = (Span(0, 7, "Drug"), Span(18, 22, "Condition")) if i % 2 else (Span(0, 7, "Drug"),)
        store.save_annotation(Annotation(f"n{i}", "bob", bob, guideline_version=version if i else "0.9.0+old"))
        record_review(store, f"n{i}", "Drug", "dr_c")
    store.save_annotation(
        Annotation("n0", "dr_c", (Span(0, 7, "Drug"),), source="adjudication", guideline_version=version), kind="gold"
    )
    store.save_annotation(
        Annotation("n1", "chia", (Span(0, 7, "Drug"),), source="import:gold.jsonl", guideline_version=version),
        kind="gold",
    )
    with store.session() as s:
        s.add(ModelVersionRow(version="ner-v1", kind="entities", path="models/ner-v1", metrics={"f1": 0.8}))
    return project


def test_report_contents(tmp_path):
    project = _project(tmp_path)
    res = CliRunner().invoke(app, ["report", "--project-dir", str(project.root), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["corpus"]["notes"] == 12 and data["corpus"]["deidentified_notes"] == 12
    assert {a["name"] for a in data["annotators"]} == {"alice", "bob", "dr_c"}
    assert data["guideline_versions"]["stale_annotations"] == 1
    assert data["corpus"]["gold_by_origin"] == [
        {"class": "adjudicated", "annotator": "dr_c", "source": "adjudication", "annotations": 1},
        {"class": "imported", "annotator": "chia", "source": "import:gold.jsonl", "annotations": 1},
    ]
    drug = data["agreement"]["Drug"]
    assert drug["span_f1_exact"] == pytest.approx(1.0) and drug["char_iou"] == pytest.approx(1.0)
    cond = data["agreement"]["Condition"]
    assert cond["span_f1_exact"] == 0.0 and 0 < cond["span_f1_overlap"] < 1 and cond["cohen_kappa"] < 1
    assert data["qa_coverage"]["labels"]["Drug"]["met"] is True
    assert data["model_versions"][0]["version"] == "ner-v1"
    assert data["deidentification"]["token_recall"] > 0.5
    detectors = {d["detector"]: d for d in data["deidentification_detectors"]}
    assert set(detectors) == {"crf", "ensemble"} and detectors["crf"]["method"] == data["deidentification"]["method"]
    assert "MiniLM" in detectors["ensemble"]["method"] and "MiniLM" not in detectors["crf"]["method"]
    assert detectors["ensemble"]["token_recall"] > detectors["crf"]["token_recall"]  # the recall-first option
    # the fixture wrote annotation rows straight into the store, past the audit trail: the report says so
    assert data["audit"]["ok"] is False and "not recorded in the audit trail" in data["audit"]["error"]
    assert re.fullmatch(r"[0-9a-f]{64}", data["audit"]["head"])
    page = (tmp_path / "rep" / "report.html").read_text()
    assert data["audit"]["head"] in page
    assert "data:image/png;base64," in page and not re.search(r"(src|href)=['\"]https?:", page)


def test_report_counts_relations_and_their_agreement(tmp_path):
    project = _project(tmp_path)
    store = Store(project.store_url)
    version = project.guideline().version
    text = "Aspirin or warfarin."
    store.add_notes([Note(f"m{i}", text) for i in range(4)], deidentified=True)
    spans = (Span(0, 7, "Drug", "Aspirin", id="T1"), Span(11, 19, "Drug", "warfarin", id="T2"))
    link = ({"type": "OR", "arg1": "T1", "arg2": "T2"},)
    for i in range(4):
        store.save_annotation(Annotation(f"m{i}", "alice", spans, guideline_version=version, relations=link))
        store.save_annotation(Annotation(f"m{i}", "bob", spans, guideline_version=version, relations=link if i else ()))
    res = CliRunner().invoke(app, ["report", "--project-dir", str(project.root), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    rel = json.loads((tmp_path / "rep" / "report.json").read_text())["relations"]
    assert rel["types"] == {"OR": {"human": 7, "gold": 0}}
    assert rel["agreement"]["relation_f1"] == pytest.approx(2 * 3 / (4 + 3))  # pooled over the 4 notes
    assert "<h2>Relations</h2>" in (tmp_path / "rep" / "report.html").read_text()


def _chromium(args, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):  # make test installs it: a missing browser is a missing install step
            pytest.fail("CI: chromium not installed (make chromium)", pytrace=False)
        pytest.skip("chromium not installed (make chromium)")
    return subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={tmp_path / 'chrome-profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console_errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]


def test_report_renders_in_headless_chromium(tmp_path):
    # the console capture itself must see an error on a page that has one
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom-marker')</script></body></html>")
    probe = _chromium(["--dump-dom", bad.as_uri()], tmp_path)
    assert any("boom-marker" in ln for ln in _console_errors(probe.stderr)), probe.stderr[-2000:]

    project = _project(tmp_path)
    from clinical_nlp.dataset_report import build_report

    html_path, _ = build_report(project.root, tmp_path / "rep")
    dom = _chromium(["--dump-dom", html_path.as_uri()], tmp_path)
    assert "Dataset documentation" in dom.stdout and "Agreement per label" in dom.stdout
    assert _console_errors(dom.stderr) == []
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    if shot.exists():
        shot.unlink()
    _chromium([f"--screenshot={shot}", html_path.as_uri()], tmp_path)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_preannotation_preview_renders_in_headless_chromium(tmp_path):
    """`preannotate --preview N`: a displaCy page of N sampled notes with labels, attributes and scores."""
    import json

    from typer.testing import CliRunner

    from clinical_nlp.cli.app import app

    notes = tmp_path / "notes.jsonl"
    rows = [{"id": f"n{i}", "text": f"No fever today. History of asthma {i}."} for i in range(6)]
    notes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "pre.jsonl"
    res = CliRunner().invoke(app, ["preannotate", "-i", str(notes), "-o", str(out), "--preview", "3"])
    assert res.exit_code == 0, res.output
    page = out.with_suffix(".preview.html")
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path)
    assert "3 of 6 notes" in dom.stdout and dom.stdout.count("<mark") >= 3
    assert "Condition NEG" in dom.stdout and _console_errors(dom.stderr) == []
    # a Parquet output is read back for its preview too (before: refused, "needs a JSONL output")
    pq = CliRunner().invoke(app, ["preannotate", "-i", str(notes), "-o", str(tmp_path / "x.parquet"), "--preview", "2"])
    assert pq.exit_code == 0, pq.output
    assert "2 of 6 notes" in (tmp_path / "x.preview.html").read_text()
