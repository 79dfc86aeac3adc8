"""QA review in Doccano: the items the QA policy requires go to the reviewer's own project; marking an
example done records the review.

Push (:func:`push_qa_review`) imports every note with an open review (:func:`clinical_nlp.qa.qa_todo`)
into ``<doccano.project>--qa--<reviewer>``: the note's current gold (the one an export would use;
the annotators' spans when there is no gold yet) as suggestions, and in the metadata which labels
to review and why. Pull (:func:`pull_qa_review`) records, for every label required on a note she
marked done, a review by her: ``confirmed`` when her spans of that label are the ones shown,
``corrected`` otherwise (the change in the comment). A correction becomes gold as her decision
(through the adjudication queue: validated, amendable, audited). A re-pull records nothing new.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import Guideline
from clinical_nlp.doccano.adjudication import describe, suggestion
from clinical_nlp.doccano.client import DoccanoServer
from clinical_nlp.doccano.credentials import DoccanoCredentials
from clinical_nlp.doccano.tasks import (
    DoneExample,
    TaskItem,
    TaskProject,
    TaskPull,
    TaskPush,
    identity,
    import_items,
    open_task_project,
    read_done,
    same_spans,
)
from clinical_nlp.errors import ClinicalNLPError
from clinical_nlp.qa import check_qa_coverage, qa_todo, record_review, review_history
from clinical_nlp.services.adjudication import decide, ensure_queued
from clinical_nlp.services.gold import resolve_gold
from clinical_nlp.services.validation import require_person
from clinical_nlp.store import Store
from clinical_nlp.types import Span

TASK = "qa"


@dataclass
class QAPush(TaskPush):
    open_reviews: int = 0
    notes: int = 0


@dataclass
class QAPull(TaskPull):
    confirmed: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)


def shown_spans(store: Store, guideline: Guideline, note_id: str) -> TaskItem:
    """What the reviewer is shown: the note's gold by the export precedence, else the annotators' spans."""
    chosen, _ = resolve_gold(store.annotations(kind="gold", item=note_id), guideline.schema.gold.copy(
        update={"allow_single_annotator": True}))  # fmt: skip
    if note_id in chosen:
        gold = chosen[note_id]
        return TaskItem(note_id, gold.spans, {"shown": f"gold ({gold.source}, by {gold.annotator})"})
    union = suggestion(store, note_id, [])
    return TaskItem(note_id, union.spans, {"shown": "the annotators' spans (no gold yet)"})


def _required(store: Store, guideline: Guideline) -> dict[str, list[str]]:
    """item → the labels whose policy requires that item reviewed (reviewed already or not)."""
    out: dict[str, list[str]] = {}
    for name, cov in check_qa_coverage(store, guideline.schema).labels.items():
        for item in cov.required:
            out.setdefault(item, []).append(name)
    return out


def push_qa_review(
    store: Store, guideline: Guideline, project_name: str, reviewer: str, *, creds: DoccanoCredentials | None = None
) -> QAPush:
    """Import every note with an open QA review that the reviewer's project lacks; idempotent."""
    todo = qa_todo(store, guideline.schema)
    labels = sorted({r["label"] for r in todo})
    require_person(store, reviewer, action="QA review in Doccano", expert=True, labels=labels,
                   schema=guideline.schema, guideline_version=guideline.version)  # fmt: skip
    by_item: dict[str, list[dict]] = {}
    for r in todo:
        by_item.setdefault(r["item"], []).append(r)
    items = []
    for nid, rows in sorted(by_item.items()):
        shown = shown_spans(store, guideline, nid)
        review = "; ".join(f"{r['label']} ({r['why']})" for r in rows)
        items.append(TaskItem(nid, shown.spans, {**shown.meta, "review": review}))
    server = DoccanoServer(creds or DoccanoCredentials.from_env())
    where = TaskProject(project_name, TASK, reviewer)
    pid = open_task_project(server, guideline, where)
    imported, already = import_items(store, server, where, pid, items, guideline_version=guideline.version)
    return QAPush(
        where.name, pid, imported=imported, skipped_already_pushed=already, link=f"{server.url}/projects/{pid}",
        open_reviews=len(todo), notes=len(items),
    )  # fmt: skip


def _change(label: str, shown: tuple[Span, ...], hers: tuple[Span, ...]) -> str:
    before = {identity(s): s for s in shown if s.label == label}
    after = {identity(s): s for s in hers if s.label == label}
    added = [f"+{describe(after[k])}" for k in after.keys() - before.keys()]
    removed = [f"-{describe(before[k])}" for k in before.keys() - after.keys()]
    return "; ".join(sorted(removed) + sorted(added))


def pull_qa_review(
    store: Store, guideline: Guideline, project_name: str, reviewer: str, *, creds: DoccanoCredentials | None = None
) -> QAPull:
    """Record a review by ``reviewer`` of every required label on each note she marked done."""
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    where = TaskProject(project_name, TASK, reviewer)
    report = QAPull(where.name)
    required = _required(store, guideline)
    done_by_her = {(h["item"], h["label"]) for h in review_history(store) if h["expert"] == reviewer}
    for done in read_done(store, server, guideline, where, command=f"clinical-nlp qa push --reviewer {reviewer}"):
        if not isinstance(done, DoneExample):
            report.problems.append({"note": done[0], "problem": done[1]})
            continue
        nid, labels = done.note.id, required.get(done.note.id, [])
        shown = shown_spans(store, guideline, nid).spans
        if labels and all((nid, lab) in done_by_her for lab in labels) and same_spans(shown, done.spans):
            report.unchanged.append(nid)
            continue
        changes = {lab: _change(lab, shown, done.spans) for lab in labels}
        comment = done.comment or f"reviewed in Doccano project {where.name!r}, example {done.example_id}"
        try:
            if not same_spans(shown, done.spans):  # her correction becomes gold, as her decision
                ensure_queued(store, nid, f"QA correction by {reviewer}", expert=reviewer)
                decide(store, nid, "*", list(done.spans), reviewer, comment,
                       guideline_version=done.guideline_version or guideline.version)  # fmt: skip
            for lab in labels:
                verdict = "corrected" if changes[lab] else "confirmed"
                record_review(store, nid, lab, reviewer, verdict=verdict, schema=guideline.schema,
                              comment=comment + (f" [{changes[lab]}]" if changes[lab] else ""),
                              guideline_version=guideline.version)  # fmt: skip
        except ClinicalNLPError as exc:
            report.problems.append({"note": nid, "problem": str(exc)})
            continue
        (report.corrected if any(changes.values()) or not same_spans(shown, done.spans) else report.confirmed).append(
            nid
        )
    report.still_open = len(qa_todo(store, guideline.schema))
    AuditLog(store).append(
        "doccano.pull",
        actor=os.environ.get("CLINICAL_NLP_ACTOR") or creds.admin_user,
        details={"project": where.key, "reviewer": reviewer, "confirmed": report.confirmed,
                 "corrected": report.corrected, "problems": report.problems},
    )  # fmt: skip
    return report
