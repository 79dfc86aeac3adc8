"""The privacy review queue: flagged by the detector, decided by a privacy officer, a gate for push."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clinical_nlp.annotators import Annotator, Registry
from clinical_nlp.audit import AuditLog
from clinical_nlp.deid.core import Detector, PHISpan
from clinical_nlp.deid.review import flag_for_review, is_near_miss
from clinical_nlp.errors import InputFormatError, PolicyError
from clinical_nlp.services.privacy import decide, items, open_items, queue_summary, record_items
from clinical_nlp.store import Store
from clinical_nlp.types import Note


def test_flags_near_misses_uncertain_detections_and_disagreements():
    text = "Seen by Kroner and Smith at Lakeside with IMPRESSION stable"
    words = {0: (4, "O"), 8: (14, "HCPName"), 19: (24, "HCPName"), 28: (36, "Location"), 42: (52, "HCPName")}
    p_o = {0: 1.0, 8: 0.990, 19: 0.0001, 28: 0.9995, 42: 0.99}
    spans = [PHISpan(19, 24, "HCPName"), PHISpan(28, 36, "Location")]  # Lakeside: a rule found it
    got = {text[s.start : s.end]: s for s in flag_for_review(text, spans, p_o, words, 0.98, 0.995)}
    assert is_near_miss(got["Kroner"]) and got["Kroner"].label == "HCPName"  # P(O) 0.990 in [0.98, 0.995)
    assert got["Smith"].review is None  # a confident detection
    assert got["Lakeside"].review.startswith("disagreement")
    assert "IMPRESSION" not in got  # clinical vocabulary is never flagged
    assert "Seen" not in got  # P(O) 1.0


def test_adjacent_near_misses_of_one_label_are_one_item():
    text = "Has Blue Cross Blue\nShield and Dr Kroner"
    words = {4: (8, "Location"), 9: (14, "Location"), 15: (19, "Location"), 20: (26, "Location"), 34: (40, "HCPName")}
    p_o = {4: 0.937, 9: 0.934, 15: 0.973, 20: 0.965, 34: 0.95}
    got = [(text[s.start : s.end], s.label, s.review) for s in flag_for_review(text, [], p_o, words, 0.9, 0.98)]
    assert got == [
        ("Blue Cross Blue", "Location", "possible Location: P(not PHI) 0.934 (3 words)"),  # a line break parts them
        ("Shield", "Location", "possible Location: P(not PHI) 0.965"),
        ("Kroner", "HCPName", "possible HCPName: P(not PHI) 0.950"),  # another label: its own item
    ]


def test_detector_flags_are_part_of_the_phi_written():
    # two names without a context cue: the packaged tagger leaves them just above its threshold
    text = "Pt seen by Kroner today; Brenna visited with her son at bedside. Plan: extubate."
    assert Detector(review_below=None).detect(text) == []  # the detector alone misses both
    spans = Detector(review_below=0.995).detect(text)  # with a review band they are redacted and flagged
    assert {text[s.start : s.end] for s in spans if is_near_miss(s)} == {"Kroner", "Brenna"}
    assert all(s.to_dict().get("review") == s.review for s in spans if s.review)


@pytest.fixture()
def store():
    s = Store("sqlite:///:memory:")
    Registry(s).add(Annotator("officer", role="admin", phi_access=True))
    Registry(s).add(Annotator("rn", license_id="RN-1"))
    return s


def test_officer_decides_items_audited_and_others_are_refused(store):
    two = [{"start": 0, "end": 5, "label": "PTName", "reason": "possible PTName"},
           {"start": 9, "end": 12, "label": "Location", "reason": "uncertain"}]  # fmt: skip
    assert record_items(store, "n1", two) == 2
    first, second = open_items(store)
    with pytest.raises(PolicyError, match="'rn' is not registered with PHI access"):
        decide(store, first["id"], "confirmed", "rn")
    with pytest.raises(InputFormatError, match="verdict"):
        decide(store, first["id"], "maybe", "officer")
    decide(store, first["id"], "confirmed", "officer")
    decide(store, second["id"], "rejected", "officer")
    assert open_items(store) == [] and {i["status"] for i in items(store)} == {"confirmed", "rejected"}
    assert [e.details["verdict"] for e in AuditLog(store).entries("privacy_review")] == ["confirmed", "rejected"]
    assert queue_summary(store, 10)["per_100_notes"] == 20.0
    record_items(store, "n1", [])  # a new de-identification replaces open items only: decided ones stay
    assert len(items(store)) == 2


def test_push_refuses_notes_with_open_items(store):
    from clinical_nlp import doccano as dc
    from clinical_nlp.config import load_guideline
    from clinical_nlp.types import AnnotatedNote

    note = Note("n1", "Seen by Dr. Xavier.")
    store.add_notes([note], deidentified=True, method="deid")
    record_items(store, "n1", [{"start": 12, "end": 18, "label": "HCPName", "reason": "possible HCPName"}])
    nowhere = dc.DoccanoCredentials(url="http://127.0.0.1:9")
    with pytest.raises(PolicyError, match="awaiting the privacy officer"):
        dc.push(store, load_guideline(), "p", [(AnnotatedNote(note, ()), {})], ["rn"], creds=nowhere)
    decide(store, open_items(store)[0]["id"], "confirmed", "officer")
    with pytest.raises(PolicyError, match="lacks qualifications"):  # past the privacy gate, on to the next
        dc.push(store, load_guideline(), "p", [(AnnotatedNote(note, ()), {})], ["rn"], creds=nowhere)


def test_cli_deid_review_list_and_decide(tmp_path):
    from clinical_nlp.cli.app import app
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "p", name="priv")
    s = Store(project.store_url)
    Registry(s).add(Annotator("officer", role="admin", phi_access=True))
    record_items(s, "n1", [{"start": 0, "end": 5, "label": "PTName", "reason": "possible PTName"}])
    common = ["--project-dir", str(project.root)]
    listed = json.loads(CliRunner().invoke(app, ["deid-review", "list", "--json", *common]).output)
    assert [r["note_id"] for r in listed] == ["n1"]
    bad = CliRunner().invoke(app, ["deid-review", "decide", "999", "--verdict", "confirmed", "--reviewer", "officer",
                                   *common])  # fmt: skip
    assert bad.exit_code != 0 and open_items(s)
    ok = CliRunner().invoke(app, ["deid-review", "decide", str(listed[0]["id"]), "--verdict", "rejected",
                                  "--reviewer", "officer", *common])  # fmt: skip
    assert ok.exit_code == 0 and "0 open" in ok.output
