"""Adjudication queue persisted in the store: low-agreement or safety-critical items go to an expert.

API: :func:`build_queue`, :func:`pending`, :func:`decide`. A decision becomes gold
(``Store.save_annotation(..., kind="gold")``) and is recorded with who and why, plus an
``adjudicate`` audit entry. Which items qualify is decided by the store-free
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
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import load_label_schema
from clinical_nlp.consensus.adjudication import (
    AdjudicationError,
    QueueCandidate,
    QueueEntry,
    queue_reasons,
)
from clinical_nlp.store import AdjudicationRow, Store
from clinical_nlp.types import Annotation, Span

__all__ = ["AdjudicationError", "QueueCandidate", "QueueEntry", "build_queue", "decide", "entries", "pending"]


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
) -> QueueEntry:
    """Record the expert's decision: it becomes gold, with who and why, and an audit entry.

    ``decision`` is the gold payload: a list of :class:`Span` (or span dicts) for text, any JSON
    value for other modalities.
    """
    if not expert or not reason or not reason.strip():
        raise AdjudicationError(f"a decision on {item!r}/{unit!r} needs an expert and a reason")
    if (
        isinstance(decision, (list, tuple))
        and all(isinstance(d, (Span, Mapping)) for d in decision)
        and decision
        and any(isinstance(d, Span) or "start" in d for d in decision)
    ):
        payload: Any = tuple(d if isinstance(d, Span) else Span.from_dict(d) for d in decision)
    else:
        payload = decision
    with store.session() as s:
        row = s.scalars(
            select(AdjudicationRow).where(AdjudicationRow.item == item, AdjudicationRow.unit == unit)
        ).first()
        if row is None:
            raise AdjudicationError(f"item {item!r} unit {unit!r} is not in the adjudication queue")
        if row.status != "pending":
            raise AdjudicationError(f"item {item!r} unit {unit!r} was already decided by {row.decided_by!r}")
        if row.expert and row.expert != expert:
            raise AdjudicationError(f"item {item!r} unit {unit!r} is assigned to {row.expert!r}, not {expert!r}")
        stored = [d.to_dict() for d in payload] if isinstance(payload, tuple) else payload
        row.status, row.decision, row.decided_by, row.reason, row.decided_at = (
            "decided",
            json.loads(json.dumps(stored, default=str)),
            expert,
            reason,
            _now(),
        )
        entry = _entry(row)
    gold_payload = payload if isinstance(payload, (tuple, Mapping)) else {"decision": payload}
    ann = Annotation(
        item=item if unit == "*" else f"{item}#{unit}",
        annotator=expert,
        payload=gold_payload,
        source="adjudication",
        round=round,
        guideline_version=guideline_version,
        edits=dict[str, Any](reason=reason, queue_id=entry.id),
    )
    store.save_annotation(ann, kind="gold")
    AuditLog(store).append(
        "adjudicate", actor=expert, details={"item": item, "unit": unit, "reason": reason, "queue_id": entry.id}
    )
    return entry
