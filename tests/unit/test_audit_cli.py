from __future__ import annotations

import json

from sqlalchemy import text
from typer.testing import CliRunner

from clinical_nlp.audit import AuditLog
from clinical_nlp.cli.app import app
from clinical_nlp.project import init_project
from clinical_nlp.store import Store

runner = CliRunner()


def _project(tmp_path):
    project = init_project(tmp_path / "p")
    log = AuditLog(Store(project.store_url))
    for i in range(3):
        log.append("doccano.push", actor="alice", details={"n": i})
    return project


def test_verify_ok_then_detects_edit(tmp_path):
    project = _project(tmp_path)
    ok = runner.invoke(app, ["audit", "verify", "--project-dir", str(project.root)])
    assert ok.exit_code == 0 and "3 entries" in ok.output
    with Store(project.store_url).engine.begin() as con:
        con.execute(text("UPDATE audit_log SET actor='mallory' WHERE seq=2"))
    bad = runner.invoke(app, ["audit", "verify", "--project-dir", str(project.root)])
    assert bad.exit_code != 0 and "#2" in str(bad.exception)


def test_verify_detects_removed_entry(tmp_path):
    project = _project(tmp_path)
    with Store(project.store_url).engine.begin() as con:
        con.execute(text("DELETE FROM audit_log WHERE seq=2"))
    bad = runner.invoke(app, ["audit", "verify", "--project-dir", str(project.root)])
    assert bad.exit_code != 0 and "#2" in str(bad.exception)


def test_export_and_verify_file(tmp_path):
    project = _project(tmp_path)
    out = tmp_path / "audit.jsonl"
    res = runner.invoke(app, ["audit", "export", "-o", str(out), "--project-dir", str(project.root)])
    assert res.exit_code == 0
    head = res.output.strip()
    assert json.loads(out.read_text().splitlines()[-1])["head"] == head
    ok = runner.invoke(app, ["audit", "verify", "--file", str(out), "--head", head, "--project-dir", str(project.root)])
    assert ok.exit_code == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    bad = runner.invoke(app, ["audit", "verify", "--file", str(out), "--project-dir", str(project.root)])
    assert bad.exit_code != 0
    shown = runner.invoke(app, ["audit", "show", "--json", "--project-dir", str(project.root)])
    assert len(shown.output.strip().splitlines()) == 3
