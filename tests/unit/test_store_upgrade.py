"""A store made by an earlier version gets the columns added since, and keeps its rows."""

from __future__ import annotations

import sqlite3

from clinical_nlp.services.privacy import decide, items, record_items
from clinical_nlp.store import Store
from clinical_nlp.store.store import _LATER_COLUMNS
from clinical_nlp.types import Annotation, Note, Span


def test_older_store_gains_the_later_columns(tmp_path):
    from clinical_nlp.annotators import Annotator, Registry

    path = tmp_path / "state.db"
    store = Store(f"sqlite:///{path}")
    store.add_notes([Note("n1", "Seen at Oak Clinic.")], deidentified=True)
    record_items(store, "n1", [{"start": 8, "end": 11, "label": "Location", "reason": "possible Location"}])
    store.engine.dispose()
    with sqlite3.connect(path) as db:  # as an earlier version left it: none of the later columns
        for table, column, _ in _LATER_COLUMNS:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    reopened = Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        for table, column, _ in _LATER_COLUMNS:
            assert column in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}, (table, column)
    (item,) = items(reopened)
    assert (item["start"], item["restored"]) == (8, False)  # the old row, read with the new columns empty
    Registry(reopened).add(Annotator("officer", role="admin", phi_access=True))
    assert decide(reopened, item["id"], "rejected", "officer")["status"] == "rejected"
    reopened.save_annotation(Annotation("n1", "a", (Span(0, 4, "Condition", "Seen"),)), kind="human")
    assert reopened.annotations(kind="human")[0].relations == ()
