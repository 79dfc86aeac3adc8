"""The annotator's and the expert's work in Doccano's real web UI (headless chromium through Selenium):
what they click is what pull records. Screenshots are saved under artifacts/browser/."""

from __future__ import annotations

import json
import uuid

import pytest
from browser import DoccanoBrowser, binaries
from test_doccano_adjudication import EXPERT, TEXTS, queued  # noqa: F401  (fixture)
from test_doccano_roundtrip import ALICE, PASSWORD, attest, creds, register, server  # noqa: F401  (fixtures)

from clinical_nlp import doccano as dc
from clinical_nlp.config import load_guideline
from clinical_nlp.doccano.adjudication import pull_adjudication, push_adjudication
from clinical_nlp.doccano.offsets import to_doccano
from clinical_nlp.io.jsonl import row_to_annotated
from clinical_nlp.services.adjudication import pending
from clinical_nlp.store import Store

pytestmark = [pytest.mark.doccano, pytest.mark.integration]


@pytest.fixture()
def browser(request, creds):  # noqa: F811
    binaries()
    b = DoccanoBrowser(creds.url, request.node.name)
    yield b
    b.close()


def _push_to_alice(tmp_path, creds, note_id: str, text: str, start: int, end: int):  # noqa: F811
    """One de-identified note with a Condition suggestion on [start, end), pushed to alice's project."""
    pre = {"id": note_id, "text": text, "deidentified": True, "model_version": "ctx@1",
           "spans": [{"start": start, "end": end, "label": "Condition"}]}  # fmt: skip
    store = register(Store(f"sqlite:///{tmp_path}/s.db"))
    guideline, name = load_guideline(), f"cnlp-ui-{uuid.uuid4().hex[:8]}"
    rows = attest(store, [(row_to_annotated(pre).verified(), pre)])
    return store, guideline, name, dc.push(store, guideline, name, rows, [ALICE], overlap=1, creds=creds)


def test_annotator_corrects_in_the_browser_and_pull_shows_exactly_her_edits(tmp_path, creds, corpora_dir, browser):  # noqa: F811
    row = next(
        json.loads(line)
        for line in (corpora_dir / "negex_context" / "sample.jsonl").read_text().splitlines()
        if json.loads(line)["id"] == "ctx-0514"
    )
    text = row["text"]
    store, guideline, name, report = _push_to_alice(tmp_path, creds, row["id"], text, row["start"], row["end"])

    browser.login(ALICE, PASSWORD)
    browser.open_example(report.project_ids[ALICE])
    assert browser.entity_labels() == ["Condition"]  # the suggestion is there
    browser.screenshot("suggestion")
    browser.delete_entity("Condition")  # DECONDITION is not a condition here
    start = text.index("depression")
    browser.add_entity(start, start + len("depression"), "Condition")
    browser.screenshot("corrected")
    browser.mark_done()
    browser.screenshot("done")

    (got,) = dc.pull(store, guideline, name, creds=creds)
    assert got["annotator"] == ALICE
    assert [(s["start"], s["end"], s["label"]) for s in got["spans"]] == [(start, start + 10, "Condition")]
    assert got["edits"]["deleted"] == 1 and got["edits"]["added"] == 1 and got["edits"]["total"] == 2


def test_expert_adjudicates_in_the_browser(queued, creds, browser):  # noqa: F811
    store, guideline, name, fever = queued
    rep = push_adjudication(store, guideline, name, EXPERT, creds=creds)
    session = dc.AnnotatorSession(creds.url, EXPERT, PASSWORD, rep.project_id)
    page = 1 + [e["meta"]["note_id"] for e in session.examples()].index("adj-1")

    browser.login(EXPERT, PASSWORD)
    browser.open_example(rep.project_id, page)
    assert sorted(browser.entity_labels()) == ["Condition", "Condition", "FAM", "NEG"]  # both versions
    browser.screenshot("both-versions")
    browser.delete_entity("NEG")  # she sides with bob: the fever is not negated here
    browser.mark_done()
    browser.screenshot("decided")

    got = pull_adjudication(store, guideline, name, EXPERT, creds=creds)
    assert got.decided == ["adj-1"] and [e.item for e in pending(store)] == ["adj-2"]
    (gold,) = store.annotations(kind="gold", item="adj-1")
    assert gold.annotator == EXPERT
    assert sorted((s.start, s.end, s.negation, s.experiencer) for s in gold.spans) == [
        (fever[0], fever[1], "affirmed", "patient"),
        (TEXTS["adj-1"].index("asthma"), TEXTS["adj-1"].index("asthma") + 6, "affirmed", "family"),
    ]


def test_offsets_after_an_emoji_mean_the_same_characters_in_the_ui_and_in_pull(tmp_path, creds, browser):  # noqa: F811
    """Doccano's UI counts UTF-16 units (an emoji is two), we count characters: the suggestion must be
    drawn on its words and the annotator's selection must come back on hers (both were shifted)."""
    text = "Mood \U0001f600\U0001f600 today. Pt has chest pain and fever."
    s = text.index("chest pain")
    store, guideline, name, report = _push_to_alice(tmp_path, creds, "emo1", text, s, s + 10)

    browser.login(ALICE, PASSWORD)
    browser.open_example(report.project_ids[ALICE])
    drawn = browser.driver.execute_script(
        "return [...document.querySelectorAll('text')].filter(t => t.annotatorElement)"
        ".map(t => t.annotatorElement.endOffset)"
    )
    assert drawn == [len(text) + 2]  # the UI's own count: two more than ours, one per emoji
    f = text.index("fever")
    ((ui_start, ui_end, _),) = to_doccano(text, [(f, f + 5, "Condition")])
    browser.add_entity(ui_start, ui_end, "Condition")  # the selection a person makes, in the UI's units
    browser.screenshot("added")
    browser.mark_done()

    (got,) = dc.pull(store, guideline, name, creds=creds)
    assert [(x["start"], x["end"], x["text"]) for x in got["spans"]] == [(s, s + 10, "chest pain"), (f, f + 5, "fever")]
    assert got["edits"]["accepted"] == 1 and got["edits"]["added"] == 1 and got["edits"]["total"] == 1


def test_offsets_after_windows_line_breaks_mean_the_same_characters_in_the_ui_and_in_pull(tmp_path, creds, browser):  # noqa: F811
    """A note exported on Windows keeps "\\r\\n": the UI must draw the suggestion on its words and return
    the annotator's selection on hers, the carriage returns counted on both sides."""
    text = "Pt denies chest pain.\r\nHas fever since Monday.\r\n\r\nPlan: Tylenol 500 mg."
    s = text.index("chest pain")
    store, guideline, name, report = _push_to_alice(tmp_path, creds, "crlf1", text, s, s + 10)

    browser.login(ALICE, PASSWORD)
    browser.open_example(report.project_ids[ALICE])
    assert browser.entity_labels() == ["Condition"]
    for word in ("fever", "Tylenol"):
        w = text.index(word)
        browser.add_entity(w, w + len(word), "Condition")  # selected in the drawn line that holds those offsets
    browser.screenshot("added")
    browser.mark_done()

    (got,) = dc.pull(store, guideline, name, creds=creds)
    assert [x["text"] for x in got["spans"]] == ["chest pain", "fever", "Tylenol"]
    assert all(text[x["start"] : x["end"]] == x["text"] for x in got["spans"])
