"""The hash-chained audit log detects edited, removed and reordered entries."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from clinical_nlp.audit import AuditLog, AuditRow, verify_chain
from clinical_nlp.errors import AuditIntegrityError
from clinical_nlp.store import Store


@pytest.fixture()
def log(tmp_path):
    log = AuditLog(Store(f"sqlite:///{tmp_path / 'a.db'}"))
    for k in range(4):
        log.append("doccano.push", actor=f"user{k}", details={"notes": k, "ids": ["a", "b"]})
    return log


def test_chain_verifies_and_links(log):
    assert log.verify() == 4
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert log.entries("doccano.push")[2].details == {"notes": 2, "ids": ["a", "b"]}


def test_edited_details_detected(log):
    with log.store.session() as s:
        s.execute(update(AuditRow).where(AuditRow.seq == 2).values(details='{"notes":99}'))
    with pytest.raises(AuditIntegrityError, match=r"#2 .*edited"):
        log.verify()


def test_edited_actor_detected(log):
    with log.store.session() as s:
        s.execute(update(AuditRow).where(AuditRow.seq == 3).values(actor="mallory"))
    with pytest.raises(AuditIntegrityError, match="#3"):
        log.verify()


def test_removed_entry_detected(log):
    with log.store.session() as s:
        s.execute(delete(AuditRow).where(AuditRow.seq == 2))
    with pytest.raises(AuditIntegrityError, match="removed or reordered"):
        log.verify()


def test_removed_last_entry_and_rehashed_forgery(log):
    entries = log.entries()
    # dropping the tail keeps a valid prefix: the count tells the caller
    assert verify_chain(entries[:-1], key=log.key) == 3
    swapped = [entries[0], entries[2], entries[1], entries[3]]
    with pytest.raises(AuditIntegrityError):
        verify_chain(swapped, key=log.key)


def test_reordered_rows_detected(log):
    with log.store.session() as s:
        rows = {r.seq: r for r in s.scalars(select(AuditRow))}
        a, b = rows[2], rows[3]
        fields = ("timestamp", "actor", "action", "details", "prev_hash", "hash")
        va, vb = [getattr(a, f) for f in fields], [getattr(b, f) for f in fields]
        for f, x, y in zip(fields, va, vb):
            setattr(a, f, y)
            setattr(b, f, x)
    with pytest.raises(AuditIntegrityError, match="#2"):
        log.verify()


def test_unknown_action_is_refused_and_nothing_is_written(log):
    with pytest.raises(ValueError, match="unknown audit action 'pushed'"):
        log.append("pushed", actor="alice")
    assert log.verify() == 4
