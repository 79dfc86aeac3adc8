"""De-identification on real PhysioNet deid notes (shared half) through the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clinical_nlp.audit import AuditLog
from clinical_nlp.cli.app import app
from clinical_nlp.deid.core import map_span_to_original
from clinical_nlp.deid.model import tokenize
from clinical_nlp.project import init_project
from clinical_nlp.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def notes(shared_corpora):
    text = (shared_corpora / "deid_physionet" / "notes.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    with_phi = [r for r in rows if r["spans"]][:60]
    return with_phi + [r for r in rows if not r["spans"]][:20]


def test_cli_deid_on_real_notes(tmp_path, notes):
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        "".join(json.dumps({"id": r["id"], "patient": r["patient"], "text": r["text"]}) + "\n" for r in notes)
    )
    project = init_project(tmp_path / "proj")
    out, phi = tmp_path / "out.jsonl", tmp_path / "phi.jsonl"
    res = CliRunner().invoke(
        app,
        [
            "deid",
            "-i",
            str(inp),
            "-o",
            str(out),
            "--phi-output",
            str(phi),
            "--project-dir",
            str(project.root),
            "--key",
            "test",
        ],
    )
    assert res.exit_code == 0, res.output
    outs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    phis = {r["id"]: r["spans"] for r in map(json.loads, phi.read_text().splitlines())}
    gold_tokens = hit = 0
    for r in notes:
        o = outs[r["id"]]
        assert o["deidentified"] is True and o["deid_method"]
        for s in phis[r["id"]]:
            assert 0 <= s["start"] < s["end"] <= len(r["text"])
        for a, b in tokenize(r["text"]):
            g = any(a < s["end"] and s["start"] < b for s in r["spans"])
            if g and r["text"][a:b].isalnum():
                gold_tokens += 1
                hit += any(a < s["end"] and s["start"] < b for s in phis[r["id"]])
        # text outside PHI is kept; mapping a kept word back finds the same word
        mapping = [
            type("R", (), dict(orig_start=m[0], orig_end=m[1], deid_start=m[2], deid_end=m[3])) for m in o["offset_map"]
        ]
        for a, b in tokenize(o["text"])[:50]:
            oa, ob = map_span_to_original(a, b, mapping)
            if not any(m.deid_start <= a < m.deid_end for m in mapping):
                assert r["text"][oa:ob] == o["text"][a:b]
    assert hit / gold_tokens > 0.85  # seen in training: sanity, not the CV benchmark
    # gold PHI strings no longer appear in the de-identified text (names/phones)
    for r in notes:
        for s in r["spans"]:
            if s["label"] in ("PTName", "Phone") and len(s["text"]) > 3:
                assert s["text"] not in outs[r["id"]]["text"]
    store = Store(project.store_url)
    assert all(store.is_deidentified(r["id"]) for r in notes)
    entry = AuditLog(store).entries("deidentify")[0]
    assert entry.details["notes"] == len(notes)


def test_surrogates_consistent_across_notes_of_a_patient(tmp_path, notes):
    from clinical_nlp.deid import deidentify_rows

    res = list(deidentify_rows(notes, key=b"k"))
    by_patient: dict = {}
    for r, row in zip(res, notes):
        for orig, sur in r.surrogates.items():
            prev = by_patient.setdefault((row["patient"], orig.lower()), sur.lower())
            if not any(c.isdigit() for c in orig):
                assert prev == sur.lower(), (orig, prev, sur)


@pytest.mark.slow
def test_workers_output_equals_in_process_output(tmp_path, notes):
    """--workers 2 (Dask LocalCluster, whole patients per task) gives byte-identical output files."""
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        "".join(json.dumps({"id": r["id"], "patient": r["patient"], "text": r["text"]}) + "\n" for r in notes[:40])
    )
    runner = CliRunner()
    outs = {}
    for name, extra in (("local", []), ("dask", ["--workers", "2"])):
        out, phi = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.phi.jsonl"
        result = runner.invoke(
            app,
            [
                "deid",
                "--input",
                str(inp),
                "--output",
                str(out),
                "--phi-output",
                str(phi),
                "--key",
                "same-secret",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        outs[name] = (out.read_text(), phi.read_text())
    assert outs["dask"] == outs["local"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".deid-")]


def _token_recall(notes: list[dict], phis: dict[str, list[dict]]) -> float:
    gold = hit = 0
    for r in notes:
        for a, b in tokenize(r["text"]):
            if r["text"][a:b].isalnum() and any(a < s["end"] and s["start"] < b for s in r["spans"]):
                gold += 1
                hit += any(a < s["end"] and s["start"] < b for s in phis[r["id"]])
    return hit / gold


def test_cli_deid_ensemble_detector_on_real_notes(tmp_path, notes, cli):
    """``--detector ensemble`` (CRF + the shipped MiniLM): recorded as such, and finds at least what the CRF finds."""
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        "".join(json.dumps({"id": r["id"], "patient": r["patient"], "text": r["text"]}) + "\n" for r in notes)
    )
    found = {}
    for kind in ("crf", "ensemble"):
        out, phi = tmp_path / f"{kind}.jsonl", tmp_path / f"{kind}-phi.jsonl"
        args = ["deid", "-i", str(inp), "-o", str(out), "--phi-output", str(phi), "--key", "k", "--detector", kind]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        methods = {r["deid_method"] for r in map(json.loads, out.read_text().splitlines())}
        assert len(methods) == 1 and (("MiniLM" in methods.pop()) == (kind == "ensemble"))
        found[kind] = {r["id"]: r["spans"] for r in map(json.loads, phi.read_text().splitlines())}
    crf, ens = _token_recall(notes, found["crf"]), _token_recall(notes, found["ensemble"])
    assert ens >= crf >= 0.95
    bad = cli(["deid", "-i", str(inp), "-o", str(tmp_path / "x.jsonl"), "--detector", "bert"])
    assert bad.exit_code == 2 and "unknown detector 'bert'" in bad.output
    assert not (tmp_path / "x.jsonl").exists()
