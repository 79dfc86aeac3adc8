"""Append-only, keyed hash chain kept in the project store, and the content hashes of the data it covers.

Each entry stores an HMAC-SHA256 of its own content plus the hash of the entry
before it, so editing, removing or reordering any entry breaks the chain and
:func:`verify_chain` reports where. The key lives outside the database (the
``CLINICAL_NLP_AUDIT_KEY`` environment variable, the file named by
``CLINICAL_NLP_AUDIT_KEY_FILE``, or else ``audit.key`` created beside a SQLite
store with owner-only permissions), so someone who can write only the database
cannot recompute the chain. Entries written before keying (plain SHA-256) are
accepted only as a prefix of the chain.

Every entry that creates or changes an annotation row carries that row's content
hash (``details["row_hashes"]``); :meth:`AuditLog.verify_rows` re-hashes the stored rows
and names each one that differs from its last recorded hash, was never recorded,
or was deleted outside the engine.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from clinical_nlp.errors import AuditIntegrityError, ConfigError
from clinical_nlp.store import AuditRow, Store

GENESIS = "0" * 64
KEY_ENV = "CLINICAL_NLP_AUDIT_KEY"
KEY_FILE_ENV = "CLINICAL_NLP_AUDIT_KEY_FILE"
_PROCESS_KEY = secrets.token_bytes(32)  # in-memory stores only: they do not outlive the process

#: The one vocabulary of audit actions (what each records); :meth:`AuditLog.append` refuses others.
ACTIONS: dict[str, str] = {
    "ingest": "notes (and spans) loaded into the store",
    "deidentify": "notes de-identified before annotation",
    "privacy_review": "a privacy officer's verdict on an item of the de-identification review queue",
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


def entry_hash(
    seq: int, timestamp: str, actor: str, action: str, details_json: str, prev_hash: str, key: bytes | None = None
) -> str:
    """HMAC-SHA256 (plain SHA-256 when ``key`` is None: legacy entries) over an entry's fields and the previous hash."""
    blob = "\x1f".join([str(seq), timestamp, actor, action, details_json, prev_hash]).encode("utf-8")
    if key is None:
        return hashlib.sha256(blob).hexdigest()
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def _read_key_file(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"audit key file {path}: {exc.strerror}") from None
    if len(key) < 16:
        raise ConfigError(f"audit key file {path}: the key must be at least 16 bytes")
    return key


def _beside_store(store_url: str, name: str) -> Path | None:
    """``name`` in the folder of a SQLite database file (None for other stores)."""
    prefix = "sqlite:///"
    if not store_url.startswith(prefix) or store_url in (prefix, prefix + ":memory:"):
        return None
    return Path(store_url[len(prefix) :]).parent / name


def audit_key(store_url: str) -> bytes:
    """The chain key: from the environment, a named key file, or ``audit.key`` beside a SQLite store."""
    if os.environ.get(KEY_ENV):
        key = os.environ[KEY_ENV].encode("utf-8")
        if len(key) < 16:
            raise ConfigError(f"{KEY_ENV} must be at least 16 characters")
        return key
    if os.environ.get(KEY_FILE_ENV):
        return _read_key_file(Path(os.environ[KEY_FILE_ENV]))
    prefix = "sqlite:///"
    if not store_url.startswith(prefix) or store_url in (prefix, prefix + ":memory:"):
        if store_url.startswith("sqlite"):
            return _PROCESS_KEY
        raise ConfigError(f"set {KEY_ENV} or {KEY_FILE_ENV}: the audit chain of {store_url!r} needs a key")
    path = _beside_store(store_url, "audit.key")
    assert path is not None
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    return _read_key_file(path)


class AuditLog:
    """The project's audit trail.

    Example:
        >>> log = AuditLog(Store("sqlite:///:memory:"))
        >>> _ = log.append("doccano.push", actor="admin", details={"notes": 3})
        >>> log.verify()
        1
    """

    def __init__(self, store: Store, *, key: bytes | None = None):
        self.store = store
        self._key = key

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = audit_key(self.store.url)
        return self._key

    def append(
        self,
        action: str,
        *,
        actor: str,
        details: Mapping[str, Any] | None = None,
        rows: Mapping[str, str] | None = None,
    ) -> AuditEntry:
        """Add an entry chained to the last one; ``action`` must be one of :data:`ACTIONS`.

        ``rows``: ``{annotation key: content hash}`` of the annotation rows this action wrote
        (``""`` for a row it removed), as :meth:`Store.save_annotation` returns them.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; known: {sorted(ACTIONS)}")
        body = dict(details or {})
        if rows:
            body["row_hashes"] = dict(sorted(rows.items()))
        details_json = _canonical(body)
        with self.store.session() as s:
            last = s.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
            seq = 1 if last is None else last.seq + 1
            prev = GENESIS if last is None else last.hash
            ts = _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")
            digest = entry_hash(seq, ts, actor, action, details_json, prev, self.key)
            s.add(
                AuditRow(
                    seq=seq, timestamp=ts, actor=actor, action=action, details=details_json, prev_hash=prev, hash=digest
                )
            )
        self._record_head(digest)
        return AuditEntry(seq, ts, actor, action, json.loads(details_json), prev, digest)

    def _record_head(self, digest: str) -> None:
        """Keep the newest head beside a SQLite store, outside the database (see :meth:`recorded_head`)."""
        path = _beside_store(self.store.url, "audit.head")
        if path is None:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(digest + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def recorded_head(self) -> str | None:
        """The head hash last written outside the database (``audit.head`` beside a SQLite store), if any."""
        path = _beside_store(self.store.url, "audit.head")
        if path is None or not path.exists():
            return None
        return path.read_text(encoding="utf-8").strip() or None

    def entries(self, action: str | None = None) -> list[AuditEntry]:
        with self.store.session() as s:
            stmt = select(AuditRow).order_by(AuditRow.seq)
            if action is not None:
                stmt = stmt.where(AuditRow.action == action)
            return [
                AuditEntry(r.seq, r.timestamp, r.actor, r.action, json.loads(r.details), r.prev_hash, r.hash)
                for r in s.scalars(stmt)
            ]

    def head(self) -> str:
        """The hash of the newest entry (:data:`GENESIS` for an empty log): keep it outside the database."""
        with self.store.session() as s:
            last = s.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
            return GENESIS if last is None else last.hash

    def verify(self, *, expected_head: str | None = None) -> int:
        """Check the whole chain (and that it ends at ``expected_head``); returns the number of entries."""
        entries = self.entries()
        count = verify_chain(entries, key=self.key)
        for head in (expected_head, self.recorded_head()):
            if head is not None:
                check_head(entries, head)
        return count

    def verify_rows(self) -> int:
        """Re-hash every annotation row; raise naming each row that differs from the log. Returns rows checked."""
        recorded: dict[str, str] = {}
        for e in self.entries():
            recorded.update(e.details.get("row_hashes") or {})
        actual = self.store.annotation_hashes()
        problems = []
        for key, digest in sorted(actual.items()):
            if key not in recorded:
                problems.append(f"{key}: not recorded in the audit trail (written outside the engine)")
            elif recorded[key] != digest:
                problems.append(f"{key}: content differs from its audited hash (edited outside the engine)")
        for key, digest in sorted(recorded.items()):
            if digest and key not in actual:
                problems.append(f"{key}: deleted outside the engine")
        if problems:
            shown = "; ".join(problems[:20]) + (f" … (+{len(problems) - 20} more)" if len(problems) > 20 else "")
            raise AuditIntegrityError(f"{len(problems)} annotation row(s) do not match the audit trail: {shown}")
        return len(actual)


def check_head(entries: list[AuditEntry], expected_head: str) -> None:
    """Raise when the chain does not end at ``expected_head`` (entries removed from the end, or another log)."""
    head = entries[-1].hash if entries else GENESIS
    if head == expected_head:
        return
    known = {e.hash for e in entries}
    if expected_head in known:
        return  # entries were appended after the recorded head: fine
    raise AuditIntegrityError(
        f"the recorded head {expected_head[:12]}… is not in the chain (ends at {head[:12]}…): "
        "entries were removed from the end, or this is another log"
    )


def verify_chain(entries: list[AuditEntry], *, key: bytes | None = None) -> int:
    """Raise :class:`AuditIntegrityError` naming the first broken entry.

    With ``key``, entries must carry the keyed hash; plain SHA-256 entries (written before
    keying) are accepted only before the first keyed one.
    """
    keyed_seen = False
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
        fields = (e.seq, e.timestamp, e.actor, e.action, _canonical(e.details), e.prev_hash)
        if key is not None and hmac.compare_digest(entry_hash(*fields, key), e.hash):
            keyed_seen = True
        elif (key is None or not keyed_seen) and entry_hash(*fields) == e.hash:
            pass  # legacy (unkeyed) prefix, or a check without the key
        else:
            raise AuditIntegrityError(
                f"audit entry #{e.seq} ({e.action} by {e.actor}): content does not match its hash "
                "(edited, recomputed without the key, or written with another key)"
            )
        prev = e.hash
    return len(entries)


def export_log(log: AuditLog, path: Any) -> str:
    """Write the audit log as JSONL (one entry per line) plus a final ``{"head": hash}``
    line, atomically; returns the head hash. Keep the head hash elsewhere (ticket,
    e-mail, notary) to make later edits of the database detectable."""
    from clinical_nlp.io.jsonl import atomic_writer

    entries = log.entries()
    verify_chain(entries, key=log.key)
    head = entries[-1].hash if entries else GENESIS
    with atomic_writer(path) as handle:
        for e in entries:
            handle.write(json.dumps(e.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
        handle.write(json.dumps({"head": head, "entries": len(entries)}) + "\n")
    return head


def verify_export(path: Any, *, key: bytes, expected_head: str | None = None) -> int:
    """Verify an exported audit JSONL file (keyed chain, head line, optional expected head)."""
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
    count = verify_chain(entries, key=key)
    head = entries[-1].hash if entries else GENESIS
    if tail["head"] != head:
        raise AuditIntegrityError(f"{path}: head line {tail['head'][:12]}… does not match the last entry {head[:12]}…")
    if expected_head is not None and expected_head != head:
        raise AuditIntegrityError(f"{path}: head {head[:12]}… differs from the expected {expected_head[:12]}…")
    return count
