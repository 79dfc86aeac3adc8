"""Relations through a real Doccano 1.8.4 server: pushed in each annotator's name, corrected, pulled back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from test_doccano_roundtrip import ALICE, BOB, attest, creds, person, register, server  # noqa: F401  (fixtures)

from clinical_nlp import doccano as dc
from clinical_nlp.config import load_guideline
from clinical_nlp.consensus.relations import binary_relations
from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.jsonl import row_to_annotated
from clinical_nlp.store import Store

pytestmark = [pytest.mark.doccano, pytest.mark.integration]


def chia_rows(corpora_dir: Path, n: int = 3) -> list[dict]:
    """Chia dev criteria with at least three relations the schema allows (spans of other labels dropped)."""
    schema = load_guideline().schema
    labels, rows = set(schema.label_names), []
    for line in (corpora_dir / "chia" / "dev.jsonl").read_text().splitlines():
        r = json.loads(line)
        spans = [s for s in r["spans"] if s["label"] in labels and "fragments" not in s]
        by_id = {s["id"]: s for s in spans}
        rels = [
            {"type": k, "arg1": a, "arg2": b}
            for k, a, b in binary_relations(r.get("relations") or [])
            if a in by_id
            and b in by_id
            and k in schema.relation_names
            and schema.relation(k).allows(by_id[a]["label"], by_id[b]["label"])
        ]
        if len(rels) >= 3 and len(r["text"]) < 500:
            rows.append({"id": r["id"], "text": r["text"], "spans": spans, "relations": rels})
        if len(rows) == n:
            return rows
    raise AssertionError("too few Chia rows with relations")


def _keys(row: dict) -> set[tuple]:
    spans = {s["id"]: (s["start"], s["end"], s["label"]) for s in row["spans"]}
    return {(spans[r["arg1"]], spans[r["arg2"]], r["type"]) for r in row["relations"]}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, creds, corpora_dir):  # noqa: F811
    store = register(Store(f"sqlite:///{tmp_path_factory.mktemp('rel')}/state.db"))
    name = f"cnlp-rel-{uuid.uuid4().hex[:10]}"
    rows = chia_rows(corpora_dir)
    docs = attest(store, [(row_to_annotated(r).verified(), r) for r in rows])
    report = dc.push(store, load_guideline(), name, docs, [ALICE, BOB], overlap=2, creds=creds)
    return store, name, rows, report


def _span_ids(session, eid: int) -> dict[tuple, int]:
    names = session.label_names()
    return {(s["start_offset"], s["end_offset"], names[s["label"]]): s["id"] for s in session.spans(eid)}


def test_relations_pushed_pulled_and_edits_counted(pushed, creds):  # noqa: F811
    store, name, rows, report = pushed
    guideline = load_guideline()
    n_rel = sum(len(r["relations"]) for r in rows)
    assert report.relations_created == 2 * n_rel  # each annotator gets every suggested link
    project = dc.DoccanoServer(creds).find_project(report.doccano_projects[ALICE])
    assert project["use_relation"] is True
    alice, bob = person(creds, ALICE, report), person(creds, BOB, report)
    assert set(alice.relation_type_ids()) == set(guideline.schema.relation_names)
    for ex in alice.examples():
        alice.mark_done(ex["id"])
    # bob, on the first note: deletes one link, retypes another, adds a new one
    first = rows[0]
    by_note = {e["meta"]["note_id"]: e["id"] for e in bob.examples()}
    eid = by_note[first["id"]]
    types = {v: k for k, v in bob.relation_type_ids().items()}
    links = sorted(bob.relations(eid), key=lambda r: r["id"])
    assert len(links) == len(first["relations"])
    label_of = {v: k[2] for k, v in _span_ids(bob, eid).items()}
    schema = guideline.schema

    def retype(link: dict) -> str | None:
        """Another type the schema allows between the link's two spans."""
        head, tail = label_of[link["from_id"]], label_of[link["to_id"]]
        others = [r.name for r in schema.relations if r.name != types[link["type"]] and r.allows(head, tail)]
        return others[0] if others else None

    retyped = next(k for k, link in enumerate(links) if retype(link))
    deleted = next(k for k in range(len(links)) if k != retyped)
    bob.change_relation_type(eid, links[retyped]["id"], str(retype(links[retyped])))
    bob.delete_relation(eid, links[deleted]["id"])
    spans = {s["id"]: (s["start"], s["end"], s["label"]) for s in first["spans"]}
    linked = {(r["arg1"], r["arg2"]) for r in first["relations"]} | {(r["arg2"], r["arg1"]) for r in first["relations"]}
    coordinated = set(guideline.schema.relation("AND").heads)
    free = [
        (a, b)
        for a in spans
        for b in spans
        if a < b and (a, b) not in linked and {spans[a][2], spans[b][2]} <= coordinated
    ]
    a, b = free[0]
    doccano_ids = _span_ids(bob, eid)
    bob.add_relation(eid, doccano_ids[spans[a]], doccano_ids[spans[b]], "AND")
    bob.mark_done(eid)

    pulled = {(r["id"], r["annotator"]): r for r in dc.pull(store, guideline, name, creds=creds)}
    for row in rows:
        got = pulled[(row["id"], ALICE)]
        assert _keys(got) == _keys(row)
        assert got["edits"]["relations_kept"] == len(row["relations"]) and got["edits"]["total"] == 0
    assert (first["id"], BOB) in pulled, dc.pull_problems(store, name)
    rb = pulled[(first["id"], BOB)]
    e = rb["edits"]
    assert (e["relations_deleted"], e["relations_changed_type"], e["relations_added"]) == (1, 1, 1)
    assert e["relations_kept"] == len(first["relations"]) - 2 and e["total"] == 3
    assert len(_keys(rb)) == len(_keys(first))  # one deleted, one added
    span_of = {v: k for k, v in _span_ids(bob, eid).items()}
    gone, changed = links[deleted], links[retyped]
    assert (span_of[gone["from_id"]], span_of[gone["to_id"]], types[gone["type"]]) not in _keys(rb)
    assert (span_of[changed["from_id"]], span_of[changed["to_id"]], retype(changed)) in _keys(rb)
    assert (spans[a], spans[b], "AND") in _keys(rb)
    stored = store.annotations(kind="human", item=first["id"], annotator=BOB)[0]
    assert len(stored.relations) == len(first["relations"])  # one deleted, one added, one retyped
    assert {r["arg1"] for r in stored.relations} <= {s.id for s in stored.spans}


def test_second_push_keeps_corrected_relations(pushed, creds):  # noqa: F811
    store, name, rows, report = pushed
    docs = [(row_to_annotated(r).verified(), r) for r in rows]
    again = dc.push(store, load_guideline(), name, docs, [ALICE, BOB], overlap=2, creds=creds)
    assert again.imported == 0 and again.relations_created == 0
    bob = person(creds, BOB, report)
    eid = {e["meta"]["note_id"]: e["id"] for e in bob.examples()}[rows[0]["id"]]
    assert len(bob.relations(eid)) == len(rows[0]["relations"])  # bob's corrections are still there


def test_disallowed_relation_is_a_pull_problem_for_that_note_only(pushed, creds):  # noqa: F811
    store, name, rows, report = pushed
    guideline = load_guideline()
    bob = person(creds, BOB, report)
    eid = {e["meta"]["note_id"]: e["id"] for e in bob.examples()}[rows[1]["id"]]
    ids = _span_ids(bob, eid)
    spans = sorted(ids)  # two spans linked with Has_value whatever their labels: not allowed unless tail is Value
    head, tail = next((h, t) for h in spans for t in spans if h != t and t[2] != "Value")
    bob.add_relation(eid, ids[head], ids[tail], "Has_value")
    bob.mark_done(eid)
    rows_out = dc.pull(store, guideline, name, creds=creds)
    assert (rows[1]["id"], BOB) not in {(r["id"], r["annotator"]) for r in rows_out}
    problems = dc.pull_problems(store, name)
    mine = [p for p in problems if (p["note"], p["annotator"]) == (rows[1]["id"], BOB)]
    assert mine and "Has_value" in mine[0]["problem"] and "not allowed" in mine[0]["problem"]
    assert (rows[0]["id"], BOB) in {(r["id"], r["annotator"]) for r in rows_out}


def test_push_refuses_a_relation_the_schema_forbids(tmp_path, creds, corpora_dir):  # noqa: F811
    store = register(Store(f"sqlite:///{tmp_path}/s.db"))
    row = chia_rows(corpora_dir, 1)[0]
    row["relations"] = [{"type": "Has_value", "arg1": row["spans"][0]["id"], "arg2": row["spans"][0]["id"]}]
    row["relations"][0]["arg2"] = next(s["id"] for s in row["spans"] if s["label"] != "Value")
    docs = attest(store, [(row_to_annotated(row).verified(), row)])
    with pytest.raises(InputFormatError, match="not allowed"):
        dc.push(store, load_guideline(), f"cnlp-bad-{uuid.uuid4().hex[:6]}", docs, [ALICE], creds=creds)
    assert store.annotations() == []


def test_expert_sees_the_annotators_links_and_her_decision_keeps_hers(tmp_path, creds):  # noqa: F811
    from test_doccano_adjudication import EXPERT, expert_store

    from clinical_nlp.consensus.adjudication import QueueCandidate
    from clinical_nlp.doccano.adjudication import pull_adjudication, push_adjudication
    from clinical_nlp.services.adjudication import build_queue
    from clinical_nlp.types import Annotation, Span

    text = "HbA1c > 7% within 6 months"
    store, guideline = expert_store(tmp_path, creds, {"rel-1": text})
    spans = (
        Span(0, 5, "Measurement", "HbA1c", id="T1"),
        Span(6, 10, "Value", "> 7%", id="T2"),
        Span(11, 26, "Temporal", "within 6 months", id="T3"),
    )
    value = {"type": "Has_value", "arg1": "T1", "arg2": "T2"}
    when = {"type": "Has_temporal", "arg1": "T1", "arg2": "T3"}
    store.save_annotations(
        [
            Annotation("rel-1", ALICE, spans, guideline_version="g", relations=(value, when)),
            Annotation("rel-1", BOB, spans, guideline_version="g", relations=(value,)),
        ],
        kind="human",
    )
    build_queue(store, [QueueCandidate("rel-1", "text", {"relation_f1": 0.67})], expert=EXPERT)
    name = f"cnlp-adjrel-{uuid.uuid4().hex[:8]}"
    pushed = push_adjudication(store, guideline, name, EXPERT, creds=creds)
    expert = person(creds, EXPERT, pushed.project_id)
    (ex,) = expert.examples()
    assert "Has_temporal" in ex["meta"]["links"] and ALICE in ex["meta"]["links"]
    links = expert.relations(ex["id"])
    assert len(links) == 2  # the union of both annotators' links, on one set of spans
    types = {v: k for k, v in expert.relation_type_ids().items()}
    dropped = next(r for r in links if types[r["type"]] == "Has_temporal")
    expert.delete_relation(ex["id"], dropped["id"])  # she sides with bob
    expert.mark_done(ex["id"])
    result = pull_adjudication(store, guideline, name, EXPERT, creds=creds)
    assert result.decided == ["rel-1"]
    (gold,) = [a for a in store.annotations(kind="gold", item="rel-1")]
    by_id = {s.id: s for s in gold.spans}
    assert [(r["type"], by_id[r["arg1"]].text, by_id[r["arg2"]].text) for r in gold.relations] == [
        ("Has_value", "HbA1c", "> 7%")
    ]
    again = pull_adjudication(store, guideline, name, EXPERT, creds=creds)
    assert again.unchanged == ["rel-1"] and again.decided == []


def test_spans_and_links_after_emoji_come_back_on_their_characters(tmp_path, creds, corpora_dir):  # noqa: F811
    """An emoji before the spans (two UTF-16 units in Doccano, one character here): what Doccano holds
    is in its units, and what pull returns is the pushed spans and links unchanged."""
    row = chia_rows(corpora_dir, 1)[0]
    shift = len("\U0001f4cb\U0001f600 ")
    row = {
        **row,
        "id": "emoji-" + row["id"],
        "text": "\U0001f4cb\U0001f600 " + row["text"],
        "spans": [{**s, "start": s["start"] + shift, "end": s["end"] + shift} for s in row["spans"]],
    }
    store = register(Store(f"sqlite:///{tmp_path}/state.db"))
    name = f"cnlp-relemo-{uuid.uuid4().hex[:8]}"
    docs = attest(store, [(row_to_annotated(row).verified(), row)])
    report = dc.push(store, load_guideline(), name, docs, [ALICE], overlap=1, creds=creds)
    alice = person(creds, ALICE, report)
    (ex,) = alice.examples()
    held = {(a - 2, b - 2, lab) for a, b, lab in _span_ids(alice, ex["id"])}  # Doccano's units: two more
    assert {(s["start"], s["end"], s["label"]) for s in row["spans"]} <= held
    alice.mark_done(ex["id"])
    (got,) = dc.pull(store, load_guideline(), name, creds=creds)
    assert {(s["start"], s["end"], s["label"], s["text"]) for s in got["spans"]} == {
        (s["start"], s["end"], s["label"], row["text"][s["start"] : s["end"]]) for s in row["spans"]
    }
    assert _keys(got) == _keys(row) and got["edits"]["total"] == 0
