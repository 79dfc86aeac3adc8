"""Words the privacy officer judged no identifier go back into the note; confirming again takes them out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from clinical_nlp.annotators import Annotator, Registry
from clinical_nlp.audit import AuditLog
from clinical_nlp.errors import InputFormatError, StoreError
from clinical_nlp.services.privacy import decide, items, open_items, record_items
from clinical_nlp.services.privacy_restore import plan_restore, restore_rejected, swapped_text
from clinical_nlp.store import Store, text_sha256
from clinical_nlp.types import Annotation, Note, Span

ORIGINAL = "Allergic to Keflex. Seen by Dr Kroner at Elm Clinic."
DEID = "Allergic to Centerville. Seen by Dr Smith at Oak Clinic."


def _queued(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/state.db")
    Registry(store).add(Annotator("officer", role="admin", phi_access=True))
    store.add_notes([Note("n1", DEID)], deidentified=True, method="deid")
    sha = text_sha256(ORIGINAL)
    found = [("Centerville", "Keflex", "Location"), ("Smith", "Kroner", "HCPName"), ("Oak", "Elm", "Location")]
    record_items(
        store,
        "n1",
        [
            {"start": DEID.index(s), "end": DEID.index(s) + len(s), "label": lab, "reason": f"possible {lab}",
             "orig_start": ORIGINAL.index(o), "orig_end": ORIGINAL.index(o) + len(o)}
            for s, o, lab in found
        ],
        source_sha256=sha,
    )  # fmt: skip
    return store, {it["note_id"] + ":" + DEID[it["start"] : it["end"]]: it["id"] for it in items(store)}


def _words(store):
    text = store.notes(["n1"])[0].text
    return {it["id"]: text[it["start"] : it["end"]] for it in items(store)}


def test_rejected_words_come_back_and_other_items_follow(tmp_path):
    store, ids = _queued(tmp_path)
    drug, smith, oak = ids["n1:Centerville"], ids["n1:Smith"], ids["n1:Oak"]
    decide(store, drug, "rejected", "officer")
    decide(store, oak, "rejected", "officer")
    assert restore_rejected(store, [drug, smith, oak], {"n1": ORIGINAL}, reviewer="officer") == {"n1": 2}
    assert store.notes(["n1"])[0].text == "Allergic to Keflex. Seen by Dr Smith at Elm Clinic."
    assert _words(store) == {drug: "Keflex", smith: "Smith", oak: "Elm"}  # the open item moved with the text
    assert store.is_deidentified("n1")  # the record holds the new text's hash
    assert restore_rejected(store, [drug, oak], {"n1": ORIGINAL}, reviewer="officer") == {}  # done once
    # the officer changes her mind: it is an identifier after all, and the surrogate goes back
    decide(store, oak, "confirmed", "officer")
    assert store.notes(["n1"])[0].text == "Allergic to Keflex. Seen by Dr Smith at Oak Clinic."
    assert _words(store)[oak] == "Oak" and not [i for i in items(store) if i["id"] == oak][0]["restored"]
    from clinical_nlp.services.privacy import queue_summary

    assert queue_summary(store, 1)["restored"] == 1  # Keflex; Elm was taken out again
    AuditLog(store).verify()
    assert [e.details.get("restored") for e in AuditLog(store).entries("privacy_review")].count({"n1": 2}) == 1


def test_a_wrong_original_or_an_annotated_note_changes_nothing(tmp_path):
    store, ids = _queued(tmp_path)
    drug = ids["n1:Centerville"]
    decide(store, drug, "rejected", "officer")
    with pytest.raises(InputFormatError, match="not the one deid read"):
        plan_restore(store, [drug], {"n1": ORIGINAL.replace("Keflex", "Bactrim")})
    with pytest.raises(InputFormatError, match="not in the original file given"):
        plan_restore(store, [drug], {})
    store.save_annotation(Annotation("n1", "alice", (Span(0, 8, "Condition", "Allergic"),)), kind="human")
    with pytest.raises(StoreError):
        plan_restore(store, [drug], {"n1": ORIGINAL})
    assert store.notes(["n1"])[0].text == DEID and store.is_deidentified("n1")


def test_cli_checks_the_original_before_any_verdict(tmp_path):
    from clinical_nlp.cli.app import app
    from clinical_nlp.project import init_project

    project = init_project(tmp_path / "p", name="restore")
    store = Store(project.store_url)
    Registry(store).add(Annotator("officer", role="admin", phi_access=True))
    store.add_notes([Note("n1", DEID)], deidentified=True, method="deid")
    start, end = DEID.index("Centerville"), DEID.index("Centerville") + len("Centerville")
    record_items(store, "n1", [{"start": start, "end": end, "label": "Location", "reason": "possible Location",
                                "orig_start": 12, "orig_end": 18}], source_sha256=text_sha256(ORIGINAL))  # fmt: skip
    (item,) = open_items(store)
    wrong, right = tmp_path / "wrong.jsonl", tmp_path / "in.jsonl"
    wrong.write_text(json.dumps({"id": "n1", "text": ORIGINAL + " "}) + "\n")
    right.write_text(json.dumps({"id": "n1", "text": ORIGINAL}) + "\n")
    common = [str(item["id"]), "--verdict", "rejected", "--reviewer", "officer", "--project-dir", str(project.root)]
    bad = CliRunner().invoke(app, ["deid-review", "decide", *common, "--original", str(wrong)])
    assert bad.exit_code != 0 and "not the one deid read" in str(bad.exception)
    assert open_items(store)  # no verdict was written
    ok = CliRunner().invoke(app, ["deid-review", "decide", *common, "--original", str(right)])
    assert ok.exit_code == 0 and "original words restored: 1 in 1 note(s)" in ok.output
    assert store.notes(["n1"])[0].text.startswith("Allergic to Keflex.")
    listed = CliRunner().invoke(app, ["deid-review", "list", "--status", "all", "--project-dir", str(project.root)])
    assert "Allergic to «Keflex». Seen by Dr Smith" in listed.output
    assert "deid-review notes -o FILE" in ok.output  # deid's output file is now out of date


def test_after_a_restore_the_push_names_the_stale_file_and_notes_writes_the_current_texts(tmp_path):
    """Before: the file deid wrote (with the surrogate) was refused at push as 'no de-identification
    record', and no command wrote the restored texts to pre-annotate."""
    from conftest import run_cli

    from clinical_nlp.audit import AuditLog
    from clinical_nlp.doccano.push_checks import check_phi_policy
    from clinical_nlp.errors import PolicyError
    from clinical_nlp.project import init_project
    from clinical_nlp.services.privacy_restore import restore_rejected

    store, ids = _queued(tmp_path)
    project = init_project(tmp_path / "p", name="restore", store_url=f"sqlite:///{tmp_path}/state.db")
    store.add_notes([Note("n2", "No PHI here.")], deidentified=True, method="deid")
    store.add_notes([Note("n3", "Raw note, never de-identified.")])
    for item in ids.values():
        decide(store, item, "rejected", "officer")
    restore_rejected(store, list(ids.values()), {"n1": ORIGINAL}, reviewer="officer")
    stale = [(Note("n1", DEID), {})]  # the row of deid's output, with the surrogates
    with pytest.raises(PolicyError, match=r"1 note\(s\) differ from the de-identified text the store holds"):
        check_phi_policy(store, AuditLog(store), "p", stale, {"n1": ["alice"]}, require_deid=True,
                         allow_phi=False, actor=None, phi_access_check=None)  # fmt: skip
    out = tmp_path / "current.jsonl"
    res = run_cli(["deid-review", "notes", "-o", str(out), "--project-dir", str(project.root)])
    assert res.exit_code == 0, res.output
    assert "2 note(s) ready to push" in res.output and "held back: 1 no de-identification record" in res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["text"]) for r in rows] == [("n1", ORIGINAL), ("n2", "No PHI here.")]
    check_phi_policy(store, AuditLog(store), "p", [(Note("n1", ORIGINAL), {})], {"n1": ["alice"]},
                     require_deid=True, allow_phi=False, actor=None, phi_access_check=None)  # fmt: skip


@given(
    st.text(alphabet="ab .\n", min_size=1, max_size=40).flatmap(
        lambda text: st.tuples(
            st.just(text),
            st.lists(st.tuples(st.integers(0, len(text)), st.integers(1, 5), st.text("XYZ", max_size=6)), max_size=4),
        )
    )
)
def test_swapped_text_puts_each_word_where_its_span_says(case):
    text, raw = case
    swaps, taken = [], -1
    for k, (start, length, words) in enumerate(sorted(raw)):
        end = min(len(text), start + length)
        if start > taken and start < end:
            swaps.append((k, start, end, words))
            taken = end
    new, spans = swapped_text(text, swaps)
    for k, _start, _end, words in swaps:
        a, b = spans[k]
        assert new[a:b] == words
    expected, last = "", 0
    for _k, start, end, words in swaps:
        expected += text[last:start] + words
        last = end
    assert new == expected + text[last:]


def test_a_new_deidentification_supersedes_decided_items(tmp_path):
    from clinical_nlp.services.privacy import queue_summary

    store, ids = _queued(tmp_path)
    drug = ids["n1:Centerville"]
    decide(store, drug, "rejected", "officer")
    record_items(store, "n1", [{"start": 0, "end": 8, "label": "Location", "reason": "possible Location"}])
    statuses = {it["id"]: it["status"] for it in items(store)}
    assert statuses[drug] == "superseded" and sorted(statuses.values()).count("open") == 1
    with pytest.raises(InputFormatError, match="earlier de-identification"):
        decide(store, drug, "confirmed", "officer")
    assert restore_rejected(store, [drug], {"n1": ORIGINAL}, reviewer="officer") == {}  # stale offsets never used
    assert plan_restore(store, [drug], {"n1": ORIGINAL}) == {}
    assert store.notes(["n1"])[0].text == DEID
    assert queue_summary(store, 1) == {
        "open": 1, "confirmed": 0, "rejected": 0, "superseded": 1, "restored": 0, "items": 1, "per_100_notes": 100.0
    }  # fmt: skip
