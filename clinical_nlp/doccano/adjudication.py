"""Adjudication in Doccano: the expert decides in her own project, the engine records the decision on pull.

Push (:func:`push_adjudication`) imports every text note queued for the expert into
``<doccano.project>--adjudication--<expert>`` (collaborative, she is its only annotator): the
union of the annotators' spans as suggestions, and in the example's metadata who proposed
what (``by <annotator>``), which suggestions not everyone made (``disputed``) and why the note
is queued (``reasons``). She deletes what is wrong, adds what is missing, optionally writes
the reason as a comment, and marks the example done. Pull (:func:`pull_adjudication`) reads her
finished examples (marked done by *her*), checks them through the validation gate and records
each as her decision (:func:`clinical_nlp.services.adjudication.decide`: gold, amendable,
audited); an unchanged re-pull records nothing, a changed one amends. Resumable as the
annotators' push: the import task is recorded before it is awaited, links name server and project.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import Guideline
from clinical_nlp.consensus.relations import RelKey, relation_keys, relations_for, with_span_ids
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
from clinical_nlp.io.attribute_labels import attribute_label
from clinical_nlp.services.adjudication import decide, entries, pending
from clinical_nlp.services.validation import require_person
from clinical_nlp.store import Store
from clinical_nlp.types import ATTRIBUTE_DEFAULTS, Annotation, Span

TASK = "adjudication"


def adjudication_project_name(project: str, expert: str) -> str:
    """``<project>--adjudication--<expert>``."""
    return TaskProject(project, TASK, expert).name


@dataclass
class AdjudicationPush(TaskPush):
    queued: int = 0


@dataclass
class AdjudicationPull(TaskPull):
    decided: list[str] = field(default_factory=list)
    amended: list[str] = field(default_factory=list)


def _versions(store: Store, note_id: str) -> dict[str, Annotation]:
    """Each annotator's latest human annotation of the note."""
    out: dict[str, Annotation] = {}
    for ann in store.annotations(kind="human", item=note_id):
        out[ann.annotator] = ann
    return out


def describe(span: Span) -> str:
    """``Condition [3,8) 'fever' NEG``: a span as the expert reads it in the metadata panel."""
    attrs = "".join(
        f" {attribute_label(k, v)}" for k, v in sorted(span.attributes.items()) if v != ATTRIBUTE_DEFAULTS.get(k, v)
    )
    return f"{span.label} [{span.start},{span.end}) {span.text!r}{attrs}"


def suggestion(store: Store, note_id: str, reasons: Sequence[str]) -> TaskItem:
    """The union of the annotators' spans and links (deduplicated) and the example metadata that says who
    proposed what."""
    versions = _versions(store, note_id)
    union: dict[tuple[Any, ...], Span] = {}
    proposers: dict[tuple[Any, ...], list[str]] = {}
    links: dict[RelKey, list[str]] = {}
    for who, ann in sorted(versions.items()):
        for s in ann.spans:
            key = identity(s)
            union.setdefault(key, s)
            proposers.setdefault(key, []).append(who)
        for k in relation_keys(ann.spans, ann.relations):
            links.setdefault(k, []).append(who)
    meta: dict[str, Any] = {"reasons": "; ".join(reasons), "annotators": ", ".join(sorted(versions))}
    for who, ann in sorted(versions.items()):
        meta[f"by {who}"] = "; ".join(describe(s) for s in sorted(ann.spans, key=Span.key)) or "(no spans)"
    disputed = [f"{describe(union[k])}: only {', '.join(w)}" for k, w in proposers.items() if len(w) < len(versions)]
    meta["disputed"] = "; ".join(disputed) or "(none: the annotators differ in attributes only)"
    spans = with_span_ids(tuple(sorted(union.values(), key=Span.key)))
    if links:
        meta["links"] = "; ".join(
            f"{kind} {h[2]} [{h[0]},{h[1]}) -> {t[2]} [{t[0]},{t[1]}) by {', '.join(w)}"
            for (h, t, kind), w in sorted(links.items())
        )
    # one span per (offsets, label) in Doccano: a link attaches to the first span there
    return TaskItem(note_id, spans, meta, tuple(relations_for(_first_per_offsets(spans), links)))


def _first_per_offsets(spans: Sequence[Span]) -> list[Span]:
    seen: dict[tuple[int, int, str], Span] = {}
    for s in spans:
        seen.setdefault((s.start, s.end, s.label), s)
    return list(seen.values())


def push_adjudication(
    store: Store,
    guideline: Guideline,
    project_name: str,
    expert: str,
    *,
    creds: DoccanoCredentials | None = None,
) -> AdjudicationPush:
    """Import the text notes queued for ``expert`` (or for no one) that her project lacks; idempotent."""
    require_person(
        store,
        expert,
        action="adjudication in Doccano",
        expert=True,
        labels=guideline.schema.label_names,
        schema=guideline.schema,
        guideline_version=guideline.version,
    )
    queue = [e for e in pending(store, modality="text") if e.unit == "*" and e.expert in (None, expert)]
    server = DoccanoServer(creds or DoccanoCredentials.from_env())
    where = TaskProject(project_name, TASK, expert)
    pid = open_task_project(server, guideline, where)
    items = [suggestion(store, e.item, e.reasons) for e in queue]
    imported, already = import_items(store, server, where, pid, items, guideline_version=guideline.version)
    return AdjudicationPush(
        where.name, pid, imported=imported, skipped_already_pushed=already, link=f"{server.url}/projects/{pid}",
        queued=len(queue),
    )  # fmt: skip


def pull_adjudication(
    store: Store,
    guideline: Guideline,
    project_name: str,
    expert: str,
    *,
    creds: DoccanoCredentials | None = None,
    round: int = 0,
) -> AdjudicationPull:
    """Record each example the expert marked done as her decision (amending an earlier, different one);
    her comment on the example is the decision's reason."""
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    where = TaskProject(project_name, TASK, expert)
    report = AdjudicationPull(where.name)
    current = {e.item: e for e in entries(store) if e.unit == "*"}
    for done in read_done(store, server, guideline, where, command=f"clinical-nlp adjudicate push --expert {expert}"):
        if not isinstance(done, DoneExample):
            report.problems.append({"note": done[0], "problem": done[1]})
            continue
        nid = done.note.id
        before = current.get(nid)
        was_decided = before is not None and before.status == "decided"
        if (
            before is not None
            and was_decided
            and same_spans(before.decision, done.spans)
            and _same_links(store, nid, done, guideline)
        ):
            report.unchanged.append(nid)
            continue
        reason = done.comment or f"decided in Doccano project {where.name!r}, example {done.example_id}"
        decide(
            store,
            nid,
            "*",
            list(done.spans),
            expert,
            reason,
            round=round,
            guideline_version=done.guideline_version or guideline.version,  # the one she decided under
            relations=done.relations,
        )
        (report.amended if was_decided else report.decided).append(nid)
    report.still_open = len([e for e in pending(store, modality="text") if e.expert in (None, expert)])
    AuditLog(store).append(
        "doccano.pull",
        actor=os.environ.get("CLINICAL_NLP_ACTOR") or creds.admin_user,
        details={"project": where.key, "expert": expert, "decided": report.decided, "amended": report.amended,
                 "problems": report.problems},
    )  # fmt: skip
    return report


def _same_links(store: Store, note_id: str, done: DoneExample, guideline: Guideline) -> bool:
    """Whether the expert's links in Doccano are those of her recorded decision (the adjudicated gold)."""
    undirected = guideline.schema.undirected_relations
    gold = [a for a in store.annotations(kind="gold", item=note_id) if a.source == "adjudication"]
    recorded = relation_keys(gold[0].spans, gold[0].relations, undirected) if gold else set()
    return recorded == relation_keys(done.spans, done.relations, undirected)
