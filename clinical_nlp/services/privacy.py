"""The privacy review queue in the store: items ``clinical-nlp deid`` was unsure of, decided by a privacy
officer (a registered person with PHI access), audited. A note with open items is not pushed to Doccano.

Example:
    >>> from clinical_nlp.store import Store
    >>> store = Store("sqlite:///:memory:")
    >>> record_items(store, "n1", [{"start": 0, "end": 4, "label": "PTName", "reason": "possible PTName"}])
    1
    >>> [i["note_id"] for i in open_items(store)]
    ['n1']
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, update

from clinical_nlp.errors import InputFormatError, PolicyError
from clinical_nlp.store import PrivacyReviewRow, Store
from clinical_nlp.types import Note

VERDICTS = ("confirmed", "rejected")
#: the status of a decided item once ``deid`` de-identified its note again (kept for the record)
SUPERSEDED = "superseded"
_FIELDS = ("id", "note_id", "start", "end", "label", "reason", "status", "reviewer", "decided_at", "restored")


def record_items(
    store: Store, note_id: str, items: Sequence[Mapping[str, Any]], *, source_sha256: str | None = None
) -> int:
    """Replace the note's open items with ``items`` (its decided ones become ``superseded``; ``start``/``end``
    in the de-identified text, ``label``,
    ``reason``; optional ``orig_start``/``orig_end`` in the original, whose text hashes to
    ``source_sha256``): a new de-identification of the note brings its own. Returns how many were recorded."""
    with store.session() as s:
        s.execute(
            delete(PrivacyReviewRow).where(PrivacyReviewRow.note_id == note_id, PrivacyReviewRow.status == "open")
        )
        # decided items of an earlier de-identification point into a text the note no longer holds
        s.execute(
            update(PrivacyReviewRow)
            .where(PrivacyReviewRow.note_id == note_id, PrivacyReviewRow.status.in_(VERDICTS))
            .values(status=SUPERSEDED)
        )
        for it in items:
            s.add(
                PrivacyReviewRow(
                    note_id=note_id, start=int(it["start"]), end=int(it["end"]), label=str(it["label"]),
                    reason=str(it["reason"])[:300], source_sha256=source_sha256,
                    orig_start=None if it.get("orig_start") is None else int(it["orig_start"]),
                    orig_end=None if it.get("orig_end") is None else int(it["orig_end"]),
                )
            )  # fmt: skip
    return len(items)


def _row(r: PrivacyReviewRow) -> dict[str, Any]:
    return {**{k: getattr(r, k) for k in _FIELDS}, "restored": bool(r.restored)}


def items(store: Store, *, status: str | None = None, note_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Queue items (optionally of one status or of some notes), in note and offset order."""
    with store.session() as s:
        stmt = select(PrivacyReviewRow).order_by(PrivacyReviewRow.note_id, PrivacyReviewRow.start)
        if status is not None:
            stmt = stmt.where(PrivacyReviewRow.status == status)
        if note_ids is not None:
            stmt = stmt.where(PrivacyReviewRow.note_id.in_(list(note_ids)))
        return [_row(r) for r in s.scalars(stmt)]


def open_items(store: Store, note_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    return items(store, status="open", note_ids=note_ids)


def with_context(store: Store, rows: Sequence[Mapping[str, Any]], width: int = 40) -> list[dict[str, Any]]:
    """``rows`` with ``surrogate`` (the words now at the item's offsets) and ``context`` (the de-identified
    text around them, the item in «»): what the officer compares with the original note. Only de-identified
    text is shown; an item whose note is not stored (or whose offsets left its text) gets ``None``."""
    notes = {n.id: n for n in store.notes(sorted({str(r["note_id"]) for r in rows}))}
    out = []
    for r in rows:
        note = notes.get(str(r["note_id"]))
        start, end = int(r["start"]), int(r["end"])
        if note is None or not 0 <= start < end <= len(note.text):
            out.append({**r, "surrogate": None, "context": None})
            continue
        text = note.text
        before, after = text[max(0, start - width) : start], text[end : end + width]
        flat = " ".join(f"{before}«{text[start:end]}»{after}".split())
        out.append({**r, "surrogate": text[start:end], "context": ("…" if start > width else "") + flat
                    + ("…" if end + width < len(text) else "")})  # fmt: skip
    return out


def ready_to_push(store: Store, notes: Sequence[Note]) -> tuple[list[Note], dict[str, int]]:
    """The notes the push gate lets through (a de-identification record for exactly the stored text,
    no item awaiting the privacy officer), and how many were held back for each reason."""
    deidentified = store.deidentified_ids()
    waiting = {it["note_id"] for it in open_items(store)}
    no_record = [n for n in notes if n.id not in deidentified]
    in_review = [n for n in notes if n.id in deidentified and n.id in waiting]
    held = {n.id for n in no_record} | {n.id for n in in_review}
    reasons = {"no de-identification record": len(no_record), "awaiting the privacy officer": len(in_review)}
    return [n for n in notes if n.id not in held], {k: v for k, v in reasons.items() if v}


def pushable_rows(store: Store) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every stored note the push gate lets through now, as a note row (``id``, ``text``, metadata), in
    store order, and how many notes were held back for each reason (:func:`ready_to_push`)."""
    ready, held = ready_to_push(store, store.notes())
    return [{"id": n.id, "text": n.text, **dict(n.metadata)} for n in ready], held


def decide(store: Store, item_id: int, verdict: str, reviewer: str, *, actor: str | None = None) -> dict[str, Any]:
    """Record the officer's verdict (``confirmed``: it is PHI; ``rejected``: it is not; the surrogate stays
    unless :func:`~clinical_nlp.services.privacy_restore.restore_rejected` puts the original words back, and
    confirming a restored item puts the surrogate back); a later verdict supersedes (both audited)."""
    from clinical_nlp.annotators import Registry
    from clinical_nlp.audit import AuditLog

    if verdict not in VERDICTS:
        raise InputFormatError(f"privacy review verdict {verdict!r} is not one of {VERDICTS}")
    person = Registry(store).find(reviewer)
    if person is None or not person.phi_access:
        raise PolicyError(
            f"privacy review: {reviewer!r} is not registered with PHI access (clinical-nlp annotators add "
            f"{reviewer} --phi-access ...)"
        )
    from clinical_nlp.services.privacy_restore import apply_swaps, surrogate_back

    # confirming an item whose original words were put back takes them out again, in the same transaction
    back = surrogate_back(store, item_id) if verdict == "confirmed" else None
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    with store.session() as s:
        row = s.get(PrivacyReviewRow, int(item_id))
        if row is None:
            raise InputFormatError(f"privacy review: no queue item {item_id}")
        if row.status == SUPERSEDED:
            raise InputFormatError(
                f"privacy review: item {item_id} belongs to an earlier de-identification of note {row.note_id!r} "
                "(deid ran on it again and queued its own items)"
            )
        previous = row.status
        row.status, row.reviewer, row.decided_at = verdict, reviewer, now
        if back is not None:
            apply_swaps(s, back["note_id"], {row.id: back["surrogate"]}, restored=False)
        out = _row(row)
    AuditLog(store).append(
        "privacy_review",
        actor=actor or reviewer,
        details={
            "item": int(item_id),
            "note": out["note_id"],
            "verdict": verdict,
            "previous": previous,
            **({"surrogate_put_back": True} if back is not None else {}),
        },
    )
    return out


def queue_summary(store: Store, notes: int) -> dict[str, Any]:
    """Items per status and per 100 de-identified notes (for the dataset documentation)."""
    counts = {"open": 0, "confirmed": 0, "rejected": 0}
    superseded = restored = 0
    for it in items(store):
        restored += bool(it["restored"])  # original words put back after a rejection
        if it["status"] == SUPERSEDED:
            superseded += 1  # an earlier de-identification's: its note was de-identified again
        else:
            counts[it["status"]] = counts.get(it["status"], 0) + 1
    total = sum(counts.values())
    per_100 = round(100 * total / notes, 1) if notes else None
    return {**counts, "superseded": superseded, "restored": restored, "items": total, "per_100_notes": per_100}
