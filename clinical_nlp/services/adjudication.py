"""Adjudication queue persisted in the store: low-agreement or safety-critical items go to an expert.

API: :func:`build_queue`, :func:`pending`, :func:`decide`, :func:`decisions`. A decision is
validated (spans against the note and the schema, the expert against the registry), becomes
gold (``Store.save_annotation(..., kind="gold")``) and is recorded with who and why, plus an
``adjudicate`` audit entry carrying the gold row's content hash. A later decision amends it.
Which items qualify is decided by the store-free
:func:`clinical_nlp.consensus.adjudication.queue_reasons`.

Example:
    >>> from clinical_nlp.store import Store
    >>> store = Store("sqlite:///:memory:")
    >>> n = build_queue(store, [QueueCandidate("n1", "doc", {"span_f1": 0.5})], expert="dr_x")
    >>> [e.item for e in pending(store)]
    ['n1']
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import LabelSchema, load_guideline, load_label_schema
from clinical_nlp.consensus.adjudication import (
    AdjudicationError,
    QueueCandidate,
    QueueEntry,
    queue_reasons,
)
from clinical_nlp.consensus.relations import relation_problems
from clinical_nlp.errors import InputFormatError, StoreError
from clinical_nlp.services.validation import check_spans, coerce_spans, require_person
from clinical_nlp.store import AdjudicationDecisionRow, AdjudicationRow, Store
from clinical_nlp.types import Annotation, Note

__all__ = [
    "AdjudicationError",
    "QueueCandidate",
    "add_missing_notes",
    "QueueEntry",
    "build_queue",
    "decide",
    "decisions",
    "ensure_queued",
    "entries",
    "pending",
]


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def build_queue(
    store: Store,
    candidates: Iterable[QueueCandidate],
    *,
    expert: str | None = None,
    schema: Any = None,
    actor: str = "clinical-nlp",
) -> int:
    """Queue every candidate below the schema's agreement bars or carrying a safety-critical label.

    Existing pending entries are updated (reasons, scores, expert); decided ones are left alone.
    Returns how many entries are pending for these candidates.
    """
    schema = schema or load_label_schema()
    thresholds, critical = schema.agreement, set(schema.safety_critical)
    queued = 0
    with store.session() as s:
        for c in candidates:
            reasons = queue_reasons(c, thresholds, critical)
            if not reasons:
                continue
            row = s.scalars(
                select(AdjudicationRow).where(AdjudicationRow.item == c.item, AdjudicationRow.unit == c.unit)
            ).first()
            scores = json.loads(json.dumps(dict(c.scores), default=float))
            if row is None:
                s.add(
                    AdjudicationRow(
                        item=c.item,
                        unit=c.unit,
                        modality=c.modality,
                        reasons=reasons,
                        scores=scores,
                        expert=expert,
                        status="pending",
                        created_at=_now(),
                    )
                )
            elif row.status == "pending":
                row.reasons, row.scores, row.expert = reasons, scores, expert or row.expert
            else:
                continue
            queued += 1
    if queued:
        AuditLog(store).append("adjudicate", actor=actor, details={"queued": queued, "expert": expert})
    return queued


def ensure_queued(store: Store, item: str, reason: str, *, expert: str, modality: str = "text") -> None:
    """Queue ``item`` (whole item) for ``expert`` with ``reason`` unless it is queued already (a QA correction
    becomes gold through a decision on that entry, like any other expert's)."""
    with store.session() as s:
        row = s.scalars(
            select(AdjudicationRow).where(AdjudicationRow.item == item, AdjudicationRow.unit == "*")
        ).first()
        if row is None:
            s.add(
                AdjudicationRow(
                    item=item,
                    unit="*",
                    modality=modality,
                    reasons=[reason],
                    scores={},
                    expert=expert,
                    status="pending",
                    created_at=_now(),
                )
            )


def _entry(r: AdjudicationRow) -> QueueEntry:
    return QueueEntry(
        r.id,
        r.item,
        r.unit,
        r.modality,
        list(r.reasons),
        dict(r.scores or {}),
        r.expert,
        r.status,
        r.decision,
        r.decided_by,
        r.reason,
    )


def pending(store: Store, *, expert: str | None = None, modality: str | None = None) -> list[QueueEntry]:
    """Entries awaiting a decision (optionally for one expert or modality), oldest first."""
    with store.session() as s:
        stmt = select(AdjudicationRow).where(AdjudicationRow.status == "pending").order_by(AdjudicationRow.id)
        if expert is not None:
            stmt = stmt.where(AdjudicationRow.expert == expert)
        if modality is not None:
            stmt = stmt.where(AdjudicationRow.modality == modality)
        return [_entry(r) for r in s.scalars(stmt)]


def entries(store: Store) -> list[QueueEntry]:
    """All entries, decided or not."""
    with store.session() as s:
        return [_entry(r) for r in s.scalars(select(AdjudicationRow).order_by(AdjudicationRow.id))]


def decide(
    store: Store,
    item: str,
    unit: str,
    decision: Any,
    expert: str,
    reason: str,
    *,
    round: int = 0,
    guideline_version: str | None = None,
    schema: LabelSchema | None = None,
    relations: Sequence[Mapping[str, Any]] = (),
) -> QueueEntry:
    """Record the expert's decision: it becomes gold, with who and why, and an audit entry.

    ``relations`` (text): her links between the decision's spans (by span id), checked against the
    schema's relation types; they go into the gold annotation.

    ``decision`` is the gold payload: for a text item a list of :class:`Span` (or span dicts),
    checked against the note (offsets, text, labels and attributes of the schema); any JSON
    value for other modalities. ``expert`` must be a registered expert. A decision on an
    entry already decided amends it: the new one is used, the earlier one is kept in
    ``adjudication_decisions`` and both are audited. Nothing is written when a check fails.
    """
    if not expert or not reason or not reason.strip():
        raise AdjudicationError(f"a decision on {item!r}/{unit!r} needs an expert and a reason")
    guideline = load_guideline()
    schema = schema or guideline.schema
    guideline_version = guideline_version or guideline.version
    with store.session() as s:
        row = s.scalars(
            select(AdjudicationRow).where(AdjudicationRow.item == item, AdjudicationRow.unit == unit)
        ).first()
        if row is None:
            raise AdjudicationError(f"item {item!r} unit {unit!r} is not in the adjudication queue")
        if row.expert and row.expert != expert:
            raise AdjudicationError(f"item {item!r} unit {unit!r} is assigned to {row.expert!r}, not {expert!r}")
        modality = row.modality
    payload: Any = decision
    labels: list[str] = []
    if modality == "text":
        note = _note_or_refuse(store, item)
        spans = coerce_spans(decision, where=f"decision on {item!r}")
        payload = check_spans(note, spans, schema, who=f"decision by {expert!r}")
        labels = sorted({sp.label for sp in payload})
        bad = relation_problems(payload, relations, schema)
        if bad:
            raise AdjudicationError(f"decision on {item!r} by {expert!r}: " + "; ".join(bad))
    require_person(
        store,
        expert,
        action=f"decision on {item!r}",
        expert=True,
        labels=labels,
        schema=schema,
        guideline_version=guideline_version,
    )
    stored = [d.to_dict() for d in payload] if isinstance(payload, tuple) else payload
    stored = json.loads(json.dumps(stored, default=str))
    with store.session() as s:
        row = s.scalars(select(AdjudicationRow).where(AdjudicationRow.item == item, AdjudicationRow.unit == unit)).one()
        previous = s.scalars(
            select(AdjudicationDecisionRow)
            .where(AdjudicationDecisionRow.queue_id == row.id)
            .order_by(AdjudicationDecisionRow.id.desc())
            .limit(1)
        ).first()
        now = _now()
        history = AdjudicationDecisionRow(
            queue_id=row.id,
            item=item,
            unit=unit,
            decision=stored,
            expert=expert,
            reason=reason,
            guideline_version=guideline_version,
            supersedes=None if previous is None else previous.id,
            decided_at=now,
        )
        s.add(history)
        row.status, row.decision, row.decided_by, row.reason, row.decided_at = "decided", stored, expert, reason, now
        s.flush()
        entry, decision_id = _entry(row), history.id
        supersedes = history.supersedes
    gold_payload = payload if isinstance(payload, (tuple, Mapping)) else {"decision": payload}
    ann = Annotation(
        item=item if unit == "*" else f"{item}#{unit}",
        annotator=expert,
        payload=gold_payload,
        source="adjudication",
        round=round,
        guideline_version=guideline_version,
        edits=dict[str, Any](reason=reason, queue_id=entry.id, decision_id=decision_id, supersedes=supersedes),
        relations=tuple(dict(r) for r in relations),
    )
    written = store.save_annotation(ann, kind="gold", supersede_source=True)
    AuditLog(store).append(
        "adjudicate",
        actor=expert,
        details={
            "item": item,
            "unit": unit,
            "reason": reason,
            "queue_id": entry.id,
            "decision_id": decision_id,
            "supersedes": supersedes,
            "guideline_version": guideline_version,
        },
        rows=written,
    )
    return entry


def decisions(store: Store, item: str | None = None) -> list[dict[str, Any]]:
    """Every decision ever recorded (amended ones included), oldest first."""
    return store.history(
        AdjudicationDecisionRow,
        (
            "id",
            "queue_id",
            "item",
            "unit",
            "decision",
            "expert",
            "reason",
            "guideline_version",
            "supersedes",
            "decided_at",
        ),
        item=item,
    )


def add_missing_notes(store: Store, texts: Mapping[str, str], *, source: str) -> int:
    """Store the notes of a labels file that the store lacks (so decisions can be checked against them);
    refuses, changing nothing, when a note's text differs from the stored one. Returns how many were added."""
    stored = {n.id: n.text for n in store.notes(list(texts))}
    for nid, text in texts.items():
        if nid in stored and stored[nid] != text:
            raise InputFormatError(f"note {nid!r}: the text differs from the note in the store", source=source)
    missing = [Note(nid, text) for nid, text in texts.items() if nid not in stored]
    return store.add_notes(missing) if missing else 0


def _note_or_refuse(store: Store, item: str) -> Note:
    try:
        return store.get_note(item)
    except StoreError:
        raise InputFormatError(
            f"decision on {item!r}: the note is not in the store, so its spans cannot be checked"
        ) from None
