"""Put back the original words of privacy-review items the officer rejected (not an identifier), and
take them out again if a later verdict confirms the item after all.

``deid`` replaces an uncertain word at once and queues it; if the officer then says it is no
identifier ("allergic to «Centerville»" where the note said a drug), the surrogate would stay in
the note and in every annotation and export made from it. With the officer's copy of the input
(``deid-review decide --verdict rejected --original IN.jsonl``) the word is restored: the item
recorded where it was in the original and that note's sha256, so the file is checked to be the one
``deid`` read. An amended verdict, ``confirmed``, puts the surrogate back. The note's text, its
de-identification record (the new text's hash) and the offsets of its other items change in one
transaction; a note that annotations or Doccano examples already refer to keeps its text (refused,
nothing changed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from clinical_nlp.errors import InputFormatError
from clinical_nlp.store import DeidRecordRow, DocumentRow, PrivacyReviewRow, Store, text_sha256
from clinical_nlp.types import Note

RESTORED_METHOD = "words an officer judged no identifier restored"


def swapped_text(text: str, swaps: Sequence[tuple[int, int, int, str]]) -> tuple[str, dict[int, tuple[int, int]]]:
    """``text`` with each ``(item id, start, end, words)`` range replaced by its words; each item's new offsets.

    >>> swapped_text("allergic to Centerville, rash", [(1, 12, 23, "Bactrim")])
    ('allergic to Bactrim, rash', {1: (12, 19)})
    """
    spans: dict[int, tuple[int, int]] = {}
    for item, start, end, words in sorted(swaps, key=lambda w: w[1], reverse=True):
        if not 0 <= start < end <= len(text):
            raise InputFormatError(f"privacy review item {item}: its offsets lie outside the note's text")
        text = text[:start] + words + text[end:]
        delta = len(words) - (end - start)
        spans = {k: (a + delta, b + delta) if a >= end else (a, b) for k, (a, b) in spans.items()}
        spans[item] = (start, start + len(words))
    return text, spans


def _planned(store: Store, note_id: str, words: Mapping[int, str]) -> str:
    """The note's text after the swaps (checked: the note exists and its text may still change)."""
    (note,) = store.notes([note_id]) or (None,)
    if note is None:
        raise InputFormatError(f"note {note_id!r} of a privacy review item is not in the store")
    with store.session() as s:
        rows = s.scalars(select(PrivacyReviewRow).where(PrivacyReviewRow.id.in_(list(words)))).all()
        text, _ = swapped_text(note.text, [(r.id, r.start, r.end, words[r.id]) for r in rows])
    store.refuse_text_changes([Note(note_id, text)])
    return text


def apply_swaps(s: Any, note_id: str, words: Mapping[int, str], *, restored: bool) -> None:
    """In session ``s``: put ``words[item id]`` at each item, shift the note's other items, update the text and
    its de-identification record; the items' ``restored`` becomes ``restored``."""
    doc = s.get(DocumentRow, note_id)
    rows = s.scalars(select(PrivacyReviewRow).where(PrivacyReviewRow.note_id == note_id)).all()
    targets = sorted((r for r in rows if r.id in words), key=lambda r: r.start, reverse=True)
    text, spans = swapped_text(doc.text, [(r.id, r.start, r.end, words[r.id]) for r in targets])
    for target in targets:
        delta = len(words[target.id]) - (target.end - target.start)
        for other in rows:
            if other.id not in words and other.start >= target.end:
                other.start, other.end = other.start + delta, other.end + delta
    for target in targets:
        target.surrogate = doc.text[target.start : target.end] if restored else None
        target.start, target.end = spans[target.id]
        target.restored = restored
    doc.text = text
    record = s.get(DeidRecordRow, note_id)
    if record is not None:
        record.text_sha256 = text_sha256(text)
        if restored and RESTORED_METHOD not in record.method:
            record.method = f"{record.method}; {RESTORED_METHOD}"[:500]


def plan_restore(store: Store, item_ids: Sequence[int], originals: Mapping[str, str]) -> dict[str, dict[int, str]]:
    """Note id → {item id: its original words} for the items among ``item_ids`` not yet restored, after every
    check (recorded place, the original file's hash, a note whose text may still change): nothing is written."""
    with store.session() as s:
        rows = list(s.scalars(select(PrivacyReviewRow).where(PrivacyReviewRow.id.in_(list(item_ids)))))
        # a superseded item's offsets point into a text the note no longer holds
        pending = [
            (r.id, r.note_id, r.orig_start, r.orig_end, r.source_sha256)
            for r in rows
            if not r.restored and r.status != "superseded"
        ]
    plan: dict[str, dict[int, str]] = {}
    for item, note_id, orig_start, orig_end, source in pending:
        if orig_start is None or orig_end is None or source is None:
            raise InputFormatError(
                f"privacy review item {item}: its place in the original note was not recorded (queued by an "
                "older version): run 'clinical-nlp deid --project-dir' on the note again"
            )
        original = originals.get(note_id)
        if original is None:
            raise InputFormatError(f"note {note_id!r} is not in the original file given")
        if text_sha256(original) != source:
            raise InputFormatError(f"note {note_id!r}: the original file's text is not the one deid read")
        if not 0 <= orig_start < orig_end <= len(original):
            raise InputFormatError(f"privacy review item {item}: its offsets lie outside the original text")
        plan.setdefault(note_id, {})[item] = original[orig_start:orig_end]
    for note_id, words in plan.items():
        _planned(store, note_id, words)
    return plan


def restore(
    store: Store, plan: Mapping[str, Mapping[int, str]], *, reviewer: str, actor: str | None = None
) -> dict[str, int]:
    """Apply :func:`plan_restore`'s plan (every note in one transaction, audited); words restored per note."""
    from clinical_nlp.audit import AuditLog

    with store.session() as s:
        for note_id, words in plan.items():
            apply_swaps(s, note_id, words, restored=True)
    counts = {nid: len(words) for nid, words in plan.items()}
    if counts:
        AuditLog(store).append("privacy_review", actor=actor or reviewer, details={"restored": counts})
    return counts


def restore_rejected(
    store: Store, item_ids: Sequence[int], originals: Mapping[str, str], *, reviewer: str, actor: str | None = None
) -> dict[str, int]:
    """Restore the original words of the rejected items among ``item_ids`` (``originals``: note id → its
    original text); returns words restored per note."""
    with store.session() as s:
        rejected = [r.id for r in s.scalars(select(PrivacyReviewRow).where(PrivacyReviewRow.id.in_(list(item_ids))))
                    if r.status == "rejected"]  # fmt: skip
    return restore(store, plan_restore(store, rejected, originals), reviewer=reviewer, actor=actor)


def surrogate_back(store: Store, item_id: int) -> dict[str, str] | None:
    """For a restored item about to be confirmed: ``{note id, surrogate}`` after checking the note's text may
    change (None when the item holds no restored words)."""
    with store.session() as s:
        row = s.get(PrivacyReviewRow, int(item_id))
        if row is None or not row.restored:
            return None
        # the surrogate it had, or (restored without one recorded) the label as a placeholder
        note_id, words = row.note_id, {row.id: row.surrogate or f"[{row.label}]"}
    _planned(store, note_id, words)
    return {"note_id": note_id, "surrogate": words[int(item_id)]}


__all__ = [
    "RESTORED_METHOD",
    "apply_swaps",
    "plan_restore",
    "restore",
    "restore_rejected",
    "surrogate_back",
    "swapped_text",
]
