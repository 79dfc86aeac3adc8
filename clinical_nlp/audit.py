"""Append-only, hash-chained audit log kept in the project store.

Each entry stores the SHA-256 of its own content plus the hash of the entry
before it, so editing, removing or reordering any entry breaks the chain and
:func:`verify_chain` reports where.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from clinical_nlp.errors import AuditIntegrityError
from clinical_nlp.store import AuditRow, Store

GENESIS = "0" * 64

#: The one vocabulary of audit actions (what each records); :meth:`AuditLog.append` refuses others.
ACTIONS: dict[str, str] = {
    "ingest": "notes (and spans) loaded into the store",
    "deidentify": "notes de-identified before annotation",
    "doccano.push": "notes and pre-annotations sent to Doccano",
    "doccano.pull": "annotators' labels read back from Doccano",
    "override": "a policy rule bypassed by a named actor (e.g. pushing identifiable notes)",
    "annotator": "an annotator registered or updated",
    "qa_review": "an expert review of a label on an item",
    "adjudicate": "items queued for, or decided by, an expert",
    "train": "a model trained in a round",
    "model.trained": "a model version registered",
    "round": "an active-learning round step",
    "export": "a training corpus or dataset report written",
}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    timestamp: str
    actor: str
    action: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain JSON-ready data (every field)."""
        return {
            "seq": self.seq,
            "timestamp": self.timestamp,
            "actor": self.actor,
            "action": self.action,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _canonical(details: Mapping[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def entry_hash(seq: int, timestamp: str, actor: str, action: str, details_json: str, prev_hash: str) -> str:
    """SHA-256 over an entry's fields and the previous entry's hash."""
    blob = "\x1f".join([str(seq), timestamp, actor, action, details_json, prev_hash])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AuditLog:
    """The project's audit trail.

    Example:
        >>> log = AuditLog(Store("sqlite:///:memory:"))
        >>> _ = log.append("doccano.push", actor="admin", details={"notes": 3})
        >>> log.verify()
        1
    """

    def __init__(self, store: Store):
        self.store = store

    def append(self, action: str, *, actor: str, details: Mapping[str, Any] | None = None) -> AuditEntry:
        """Add an entry chained to the last one; ``action`` must be one of :data:`ACTIONS`."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; known: {sorted(ACTIONS)}")
        details_json = _canonical(dict(details or {}))
        with self.store.session() as s:
            last = s.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
            seq = 1 if last is None else last.seq + 1
            prev = GENESIS if last is None else last.hash
            ts = _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")
            digest = entry_hash(seq, ts, actor, action, details_json, prev)
            s.add(
                AuditRow(
                    seq=seq, timestamp=ts, actor=actor, action=action, details=details_json, prev_hash=prev, hash=digest
                )
            )
        return AuditEntry(seq, ts, actor, action, json.loads(details_json), prev, digest)

    def entries(self, action: str | None = None) -> list[AuditEntry]:
        with self.store.session() as s:
            stmt = select(AuditRow).order_by(AuditRow.seq)
            if action is not None:
                stmt = stmt.where(AuditRow.action == action)
            return [
                AuditEntry(r.seq, r.timestamp, r.actor, r.action, json.loads(r.details), r.prev_hash, r.hash)
                for r in s.scalars(stmt)
            ]

    def verify(self) -> int:
        """Check the whole chain; returns the number of entries or raises AuditIntegrityError."""
        return verify_chain(self.entries())


def verify_chain(entries: list[AuditEntry]) -> int:
    """Raise :class:`AuditIntegrityError` naming the first broken entry."""
    prev = GENESIS
    for position, e in enumerate(entries, start=1):
        if e.seq != position:
            raise AuditIntegrityError(
                f"audit entry #{position}: found sequence number {e.seq} (entry removed or reordered)"
            )
        if e.prev_hash != prev:
            raise AuditIntegrityError(
                f"audit entry #{e.seq} ({e.action} by {e.actor}): previous-hash link broken "
                "(an earlier entry was edited, removed or reordered)"
            )
        expected = entry_hash(e.seq, e.timestamp, e.actor, e.action, _canonical(e.details), e.prev_hash)
        if expected != e.hash:
            raise AuditIntegrityError(
                f"audit entry #{e.seq} ({e.action} by {e.actor}): content does not match its hash (edited)"
            )
        prev = e.hash
    return len(entries)


def export_log(log: AuditLog, path: Any) -> str:
    """Write the audit log as JSONL (one entry per line) plus a final ``{"head": hash}``
    line, atomically; returns the head hash. Keep the head hash elsewhere (ticket,
    e-mail, notary) to make later edits of the database detectable."""
    from clinical_nlp.io.jsonl import atomic_writer

    entries = log.entries()
    verify_chain(entries)
    head = entries[-1].hash if entries else GENESIS
    with atomic_writer(path) as handle:
        for e in entries:
            handle.write(json.dumps(e.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
        handle.write(json.dumps({"head": head, "entries": len(entries)}) + "\n")
    return head


def verify_export(path: Any, *, expected_head: str | None = None) -> int:
    """Verify an exported audit JSONL file (chain, head line, optional expected head)."""
    from pathlib import Path as _Path

    lines = [ln for ln in _Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise AuditIntegrityError(f"{path}: empty audit export")
    try:
        rows = [json.loads(ln) for ln in lines]
    except json.JSONDecodeError as exc:
        raise AuditIntegrityError(f"{path}: line {exc.lineno}: not JSON") from None
    tail = rows[-1]
    if "head" not in tail:
        raise AuditIntegrityError(f"{path}: last line has no head hash (truncated export)")
    entries = [
        AuditEntry(r["seq"], r["timestamp"], r["actor"], r["action"], r["details"], r["prev_hash"], r["hash"])
        for r in rows[:-1]
    ]
    count = verify_chain(entries)
    head = entries[-1].hash if entries else GENESIS
    if tail["head"] != head:
        raise AuditIntegrityError(f"{path}: head line {tail['head'][:12]}… does not match the last entry {head[:12]}…")
    if expected_head is not None and expected_head != head:
        raise AuditIntegrityError(f"{path}: head {head[:12]}… differs from the expected {expected_head[:12]}…")
    return count
