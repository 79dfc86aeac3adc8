"""config.py (schema, guideline version), store.py (notes, annotations, SQLite file), project.py."""

from __future__ import annotations

import re
import shutil
import time

import pytest
import yaml

from clinical_nlp.config import (
    default_guidelines_dir,
    load_guideline,
    load_label_schema,
    load_project,
)
from clinical_nlp.errors import ConfigError, StoreError
from clinical_nlp.project import SCRATCH_DIR, init_project, resolve_project
from clinical_nlp.store import Store
from clinical_nlp.types import Annotation, Note, Span


@pytest.fixture()
def guidelines(tmp_path):
    target = tmp_path / "guidelines"
    shutil.copytree(default_guidelines_dir(), target)
    return target


def test_label_schema_loads():
    schema = load_label_schema()
    assert "Condition" in schema.label_names and "Drug" in schema.safety_critical
    assert schema.label("Condition").attributes == ["negation", "temporality", "experiencer"]
    with pytest.raises(ConfigError, match="not in the label schema"):
        schema.label("Nope")


def test_guideline_version_changes_with_either_file(guidelines):
    v1 = load_guideline(guidelines).version
    assert v1.startswith(load_label_schema(guidelines).version + "+")
    assert load_guideline(guidelines).version == v1
    md = guidelines / "annotation_guideline.md"
    time.sleep(0.01)
    md.write_text(md.read_text() + "\nA new rule.\n")
    v2 = load_guideline(guidelines).version
    assert v2 != v1
    schema = guidelines / "label_schema.yaml"
    time.sleep(0.01)
    schema.write_text(schema.read_text() + "\n# comment\n")
    assert load_guideline(guidelines).version not in {v1, v2}


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: d["labels"].append(dict(d["labels"][0])), "duplicate labels"),
        (lambda d: d["labels"][0].update(review_rate=2), "review_rate"),
        (lambda d: d.update(unknown_key=1), "extra fields"),
        (lambda d: d.pop("labels"), "labels"),
    ],
)
def test_invalid_schema_is_a_config_error(guidelines, mutate, needle):
    path = guidelines / "label_schema.yaml"
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=needle) as err:
        load_label_schema(guidelines)
    assert "label_schema.yaml" in str(err.value)


def test_unparsable_and_missing_schema(tmp_path):
    (tmp_path / "label_schema.yaml").write_text("labels: [unclosed")
    with pytest.raises(ConfigError, match="cannot parse YAML"):
        load_label_schema(tmp_path)
    with pytest.raises(ConfigError, match="file not found"):
        load_label_schema(tmp_path / "missing")


def test_store_notes_and_annotations_round_trip(tmp_path):
    db = tmp_path / "state.db"
    store = Store(f"sqlite:///{db}")
    assert store.add_notes([Note("n1", "No fever.", {"patient": "p1"}), Note("n2", "Cough.")]) == 2
    assert db.exists()
    spans = (
        Span(3, 8, "Condition", "fever", {"negation": "negated"}, id="T1"),
        Span(0, 8, "Condition", "No fever", fragments=((0, 2), (3, 8))),
    )
    store.save_annotation(Annotation("n1", "alice", spans, guideline_version="1.0.0+abc", round=1))
    store.save_annotation(Annotation("n1", "model", spans[:1], source="model:x@1"), kind="pre")
    reopened = Store(f"sqlite:///{db}")  # the SQLite file persists
    assert reopened.get_note("n1").metadata == {"patient": "p1"}
    [ann] = reopened.annotations(kind="human", item="n1")
    assert ann.spans == spans and ann.guideline_version == "1.0.0+abc" and ann.round == 1
    assert [a.annotator for a in reopened.annotations(kind="pre")] == ["model"]
    # upsert replaces, does not duplicate
    store.save_annotation(Annotation("n1", "alice", spans[:1], round=1))
    assert len(reopened.annotations(kind="human")) == 1
    assert not reopened.is_deidentified("n1")
    reopened.mark_deidentified(["n1"])
    assert reopened.is_deidentified("n1")
    with pytest.raises(StoreError, match="'zz' is not in the store"):
        reopened.get_note("zz")


def test_store_bad_url():
    with pytest.raises(StoreError):
        Store("notadb://nowhere")


def test_init_and_resolve_project(tmp_path, monkeypatch):
    monkeypatch.delenv("CLINICAL_NLP_PROJECT", raising=False)
    monkeypatch.delenv("CLINICAL_NLP_STORE_URL", raising=False)
    project = init_project(tmp_path / "p", name="demo")
    assert (tmp_path / "p" / "clinical-nlp.yaml").exists() and (tmp_path / "p" / "state.db").exists()
    assert project.config.name == "demo" and project.guideline().version
    with pytest.raises(ConfigError, match="already exists"):
        init_project(tmp_path / "p")
    (tmp_path / "p" / "sub").mkdir()
    assert resolve_project(tmp_path / "p").root == (tmp_path / "p").resolve()
    assert load_project(tmp_path / "p").config.name == "demo"
    monkeypatch.chdir(tmp_path / "p" / "sub")
    assert resolve_project().root == (tmp_path / "p").resolve()  # found in a parent
    elsewhere = tmp_path / "loose"
    elsewhere.mkdir()
    with pytest.raises(ConfigError, match="no clinical-nlp project in .*loose"):
        resolve_project(elsewhere)  # no silent ./.clinical-nlp any more
    assert not (elsewhere / SCRATCH_DIR).exists()
    legacy = init_project(elsewhere / SCRATCH_DIR, name="scratch")  # made by an earlier version: still opened
    assert resolve_project(elsewhere).root == legacy.root
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "clinical-nlp.yaml").write_text("name: x\nbogus: 1\n")
    with pytest.raises(ConfigError, match="invalid project file"):
        resolve_project(tmp_path / "broken")


def test_each_project_gets_its_own_doccano_project(tmp_path):
    a = init_project(tmp_path / "a", name="roundtest")
    b = init_project(tmp_path / "b", name="Cardiology pilot #2")
    assert a.config.doccano.project == "clinical-nlp-roundtest"
    assert b.config.doccano.project == "clinical-nlp-Cardiology-pilot-2"


def test_a_store_made_before_relations_gets_the_column_and_keeps_its_hashes(tmp_path):
    import sqlite3

    url = f"sqlite:///{tmp_path}/old.db"
    store = Store(url)
    store.save_annotation(Annotation("n1", "ann", (Span(0, 2, "Drug", "AB"),), timestamp="t"), kind="human")
    before = store.annotation_hashes()
    store.engine.dispose()
    with sqlite3.connect(tmp_path / "old.db") as conn:  # what an earlier version's store looked like
        conn.execute("ALTER TABLE annotations DROP COLUMN relations")
    reopened = Store(url)
    assert reopened.annotation_hashes() == before  # the audit log's hashes still verify
    (ann,) = reopened.annotations()
    assert ann.relations == () and ann.spans[0].label == "Drug"
    link = {"type": "AND", "arg1": "T1", "arg2": "T2"}
    spans = (Span(0, 2, "Drug", "AB", id="T1"), Span(3, 4, "Drug", "C", id="T2"))
    reopened.save_annotation(Annotation("n2", "ann", spans, timestamp="t", relations=(link,)), kind="human")
    assert reopened.annotations(item="n2")[0].relations == (link,)


def test_relation_types_must_name_schema_labels():
    from pydantic import ValidationError

    from clinical_nlp.config import LabelSchema

    labels = [{"name": "Drug"}, {"name": "Value"}]
    ok = LabelSchema(
        version="1", labels=labels, relations=[{"name": "Has_value", "heads": ["Drug"], "tails": ["Value"]}]
    )
    assert ok.relation("Has_value").allows("Drug", "Value") and not ok.relation("Has_value").allows("Value", "Drug")
    with pytest.raises(ValidationError, match=r"relation 'Has_dose' names label\(s\) \['Dose'\]"):
        LabelSchema(version="1", labels=labels, relations=[{"name": "Has_dose", "heads": ["Drug"], "tails": ["Dose"]}])
    with pytest.raises(ValidationError, match="duplicate relation types"):
        LabelSchema(version="1", labels=labels, relations=[{"name": "R", "heads": ["Drug"], "tails": ["Drug"]}] * 2)
    with pytest.raises(ConfigError, match="not in the label schema"):
        ok.relation("OR")


def test_init_force_keeps_the_store_and_a_copy_of_every_changed_file(tmp_path):
    project = init_project(tmp_path / "p", store_url="sqlite:///team.db")
    Store(project.store_url).add_notes([Note("n1", "fever")])
    schema = project.root / "guidelines" / "label_schema.yaml"
    edited = schema.read_text(encoding="utf-8") + "# the team's own edit\n"
    schema.write_text(edited, encoding="utf-8")
    again = init_project(tmp_path / "p", force=True)
    assert again.store_url == project.store_url and [n.id for n in Store(again.store_url).notes()] == ["n1"]
    (backup,) = (project.root / "guidelines").glob("label_schema.yaml.bak-*")
    assert backup.read_text(encoding="utf-8") == edited
    assert "team's own edit" not in schema.read_text(encoding="utf-8")
    assert not list(project.root.glob("clinical-nlp.yaml.bak-*"))  # the config did not change: no copy


def test_cli_maps_an_unwritable_folder_to_exit_2(tmp_path):
    import subprocess
    import sys

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    res = subprocess.run(
        [sys.executable, "-m", "clinical_nlp", "init", str(blocked / "proj")], capture_output=True, text=True
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr and str(blocked) in res.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://team:s3cret@127.0.0.1:5/clinical", r"database driver psycopg2 is not installed.*\[postgres\]"),
        ("sqlite:////nonexistent-dir-for-the-test/x.db", "cannot create tables"),
    ],
)
def test_an_init_whose_store_cannot_open_leaves_nothing_and_shows_no_password(tmp_path, cli, url, message):
    """Before: a traceback (no driver), clinical-nlp.yaml and guidelines/ left behind (a re-run said
    'already exists'), and the URL's password in the message."""
    target = tmp_path / "new"
    code, output = cli(["init", str(target), "--store-url", url])
    assert code == 2 and re.search(message, output), output
    assert not target.exists() and "s3cret" not in output
    assert cli(["init", str(target)]).exit_code == 0  # nothing in the way of a re-run


def test_store_urls_are_shown_without_their_password():
    """What init, ingest and an export manifest print or record of a team's store URL."""
    from clinical_nlp.store import shown_url

    assert (
        shown_url("postgresql://team:s3cret@db.example:5432/clinical")
        == "postgresql://team:***@db.example:5432/clinical"
    )
    assert shown_url("sqlite:////tmp/p/state.db") == "sqlite:////tmp/p/state.db"
