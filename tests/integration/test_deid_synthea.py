"""De-identification of the Synthea FHIR notes, end to end as a new user runs it: FHIR bundles →
convert → deid --project-dir. No patient, relative or clinician name from the FHIR resources survives
in any de-identified note or its metadata, no section header is altered, and only the store's
de-identification record (never an input field) lets a note be pushed."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from clinical_nlp.cli.app import app
from clinical_nlp.project import init_project
from clinical_nlp.store import Store

pytestmark = pytest.mark.integration

HEADERS = ("# Chief Complaint", "# History of Present Illness", "# Social History", "# Allergies",
           "# Medications", "# Assessment and Plan", "## Plan")  # fmt: skip


def _names(bundles) -> set[str]:
    """Every person name in the bundles: patients, their contacts, practitioners shown as 'Dr. …'."""
    names: set[str] = set()
    for path in bundles:
        for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            res = entry["resource"]
            people = list(res.get("name") or []) if isinstance(res.get("name"), list) else []
            people += [c.get("name") or {} for c in res.get("contact") or []]
            for n in people:
                names.update(n.get("given") or [])
                if n.get("family"):
                    names.add(n["family"])
            for display in re.findall(r'"display": "Dr\. ([^"]+)"', json.dumps(res)):
                names.update(display.split())
    return {n for n in names if len(n) > 2}


@pytest.fixture(scope="module")
def deidentified(tmp_path_factory, shared_corpora):
    tmp = tmp_path_factory.mktemp("synthea")
    bundles = sorted((shared_corpora / "synthea_fhir" / "bundles").glob("*.json"))
    runner = CliRunner()
    parts = []
    for b in bundles:
        out = tmp / f"{b.stem}.jsonl"
        res = runner.invoke(app, ["convert", "-i", str(b), "-o", str(out)])
        assert res.exit_code == 0, res.output
        parts.append(out.read_text(encoding="utf-8"))
    raw = tmp / "notes.jsonl"
    raw.write_text("".join(parts), encoding="utf-8")
    project = init_project(tmp / "proj", name="synthea")
    out, phi = tmp / "out.jsonl", tmp / "phi.jsonl"
    res = runner.invoke(
        app, ["deid", "-i", str(raw), "-o", str(out), "--phi-output", str(phi), "--project-dir", str(project.root)]
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in raw.read_text(encoding="utf-8").splitlines()]
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return _names(bundles), rows, got, project


def test_no_fhir_name_survives_in_text_or_metadata(deidentified):
    names, rows, got, _ = deidentified
    assert len(names) >= 20 and len(got) == len(rows) >= 150
    in_text = {n for r in got for n in names if re.search(rf"\b{re.escape(n)}\b", r["text"])}
    meta = [json.dumps({k: v for k, v in r.items() if k not in ("text", "offset_map")}) for r in got]
    in_meta = {n for m in meta for n in names if n in m}
    assert in_text == set() and in_meta == set()
    assert sum(any(n in r["text"] for n in names) for r in rows) > 50  # the raw notes do hold them


def test_no_section_header_is_altered(deidentified):
    _, rows, got, _ = deidentified
    by_id = {r["id"]: r for r in got}
    for r in rows:
        for header in HEADERS:
            if header in r["text"]:
                assert header in by_id[r["id"]]["text"], (r["id"], header)


def test_metadata_dates_shift_with_the_text_and_files_are_pseudonyms(deidentified):
    _, rows, got, _ = deidentified
    by_id = {r["id"]: r for r in got}
    for r in rows[:20]:
        new = by_id[r["id"]]
        assert new["source"].startswith("src-") and new["patient"].startswith("pt-")
        day = r["text"].strip().splitlines()[0]  # Synthea notes open with the date
        assert r["date"].startswith(day) and new["date"].startswith(new["text"].strip().splitlines()[0])
        assert not new["date"].startswith(day)


def test_only_the_deid_record_makes_a_note_pushable(deidentified):
    _, rows, got, project = deidentified
    store = Store(project.store_url)
    assert all(store.is_deidentified(r["id"]) for r in got)
    assert not store.is_deidentified(rows[0]["id"], rows[0]["text"])  # the raw text is not what was recorded
    assert store.deid_methods() and sum(store.deid_methods().values()) == len(got)


def test_shared_synthea_notes_keep_no_synthetic_name_anywhere(tmp_path, shared_corpora):
    """The 4,006 exported Synthea notes (79 patients; authors in the metadata): no 'Name123' left anywhere."""
    from clinical_nlp.deid import deidentify_file

    src = shared_corpora / "synthea_fhir" / "notes.jsonl"
    lines = src.read_text(encoding="utf-8").splitlines()[:1200]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    deidentify_file(inp, out, key=b"test")
    name = re.compile(r"\b[A-Z][a-z]+\d{1,4}\b")
    assert sum(bool(name.search(line)) for line in lines) >= 1000  # text and author hold them before
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert not name.search(row["text"]), row["id"]
        assert not name.search(json.dumps({k: v for k, v in row.items() if k not in ("text", "offset_map")}))


def test_review_items_know_where_their_words_were_in_the_original(deidentified):
    """Each queued item records its place in the input and the input's hash: the officer's copy puts words back."""
    from clinical_nlp.services.privacy import items
    from clinical_nlp.services.privacy_restore import plan_restore
    from clinical_nlp.store import text_sha256

    _, rows, got, project = deidentified
    store = Store(project.store_url)
    queued = items(store)
    assert queued, "the Synthea notes give the review queue items"
    originals = {r["id"]: r["text"] for r in rows}
    plan = plan_restore(store, [it["id"] for it in queued], originals)  # checks only: nothing is written
    assert sum(len(words) for words in plan.values()) == len(queued)
    deid_text = {r["id"]: r["text"] for r in got}
    swapped = [plan[it["note_id"]][it["id"]] != deid_text[it["note_id"]][it["start"] : it["end"]] for it in queued]
    assert any(swapped)  # the original words, not the surrogates that replaced them
    for it in queued:
        assert deid_text[it["note_id"]] == store.notes([it["note_id"]])[0].text
        assert text_sha256(originals[it["note_id"]]) != text_sha256(deid_text[it["note_id"]])
    assert all(store.is_deidentified(r["id"]) for r in got)
