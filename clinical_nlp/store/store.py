"""The store's access layer: sessions, documents and annotations over the tables of ``tables.py``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, delete, event, make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from clinical_nlp.errors import StoreError
from clinical_nlp.store.tables import AnnotationRow, Base, DeidRecordRow, DocumentRow, utcnow
from clinical_nlp.types import Annotation, Note, Span


def spans_to_json(spans: Iterable[Span]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in spans]


def spans_from_json(rows: Iterable[dict[str, Any]]) -> tuple[Span, ...]:
    return tuple(Span.from_dict(r) for r in rows)


def annotation_key(item: str, annotator: str, round: int, kind: str) -> str:
    """The identity of one annotation row, as the audit log names it."""
    return f"{kind}|{round}|{annotator}|{item}"


def row_hash(row: AnnotationRow) -> str:
    """SHA-256 of an annotation row's content (everything but its surrogate id)."""
    content = {
        "item": row.item,
        "annotator": row.annotator,
        "kind": row.kind,
        "round": row.round,
        "payload": row.payload,
        "source": row.source,
        "model_version": row.model_version,
        "guideline_version": row.guideline_version,
        "edits": row.edits,
        "timestamp": row.timestamp,
    }
    if row.relations:  # rows without relations hash as before relations existed
        content["relations"] = row.relations
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def shown_url(url: str) -> str:
    """The store URL as messages may show it: a password is replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return url


class Store:
    """Thin access layer over the project database.

    Example:
        >>> store = Store("sqlite:///:memory:")
        >>> store.add_notes([Note("n1", "No fever.")])
        1
        >>> store.get_note("n1").text
        'No fever.'
    """

    def __init__(self, url: str = "sqlite:///state.db", *, echo: bool = False):
        self.url = url
        shown = shown_url(url)
        try:
            self.engine = create_engine(url, echo=echo, future=True)
        except (SQLAlchemyError, ValueError) as exc:
            raise StoreError(f"cannot open store {shown!r}: {str(exc).replace(url, shown)}") from None
        except ImportError as exc:  # the URL names a database whose driver is not installed
            raise StoreError(
                f"cannot open store {shown!r}: its database driver {exc.name or exc} is not installed "
                "(PostgreSQL: pip install 'clinical-nlp[postgres]', which is psycopg2-binary)"
            ) from None
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            Base.metadata.create_all(self.engine)
            _add_missing_columns(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create tables in {shown!r}: {str(exc).replace(url, shown)}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise StoreError(f"store {shown_url(self.url)!r}: {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # documents ---------------------------------------------------------------
    def add_notes(
        self,
        notes: Iterable[Note],
        *,
        deidentified: bool = False,
        method: str = "attested free of PHI by the caller",
        actor: str | None = None,
        text_changes_checked: bool = False,
    ) -> int:
        """Insert or update notes; returns how many were written. ``deidentified``: also record each text's
        hash as de-identified by ``method`` (the ``deid`` command's method, or an attestation).

        A note whose stored text has annotations or Doccano examples keeps its text: a different one is a
        :class:`StoreError` naming the notes, and nothing of the call is written (their offsets would point
        into the new text; ``text_changes_checked``: the caller ran :meth:`refuse_text_changes` on them)."""
        notes = list(notes)
        if not text_changes_checked:
            self.refuse_text_changes(notes)
        count = 0
        with self.session() as s:
            for note in notes:
                row = s.get(DocumentRow, note.id)
                meta = json.loads(json.dumps(dict(note.metadata), default=str))
                if row is None:
                    s.add(DocumentRow(id=note.id, text=note.text, meta=meta, deidentified=deidentified))
                else:
                    row.text, row.meta = note.text, meta
                if deidentified:
                    _record_deid(s, note.id, note.text, method, actor)
                count += 1
        return count

    def refuse_text_changes(self, notes: Sequence[Note]) -> None:
        """Raise :class:`StoreError` when one of ``notes`` would replace the text of a stored note that
        annotations, Doccano examples or adjudication items refer to (checked before anything is written)."""
        from clinical_nlp.store.tables import AdjudicationRow, DoccanoExampleRow

        given = {n.id: n.text for n in notes}
        ids_given: list[str] = list(given)
        held: set[str] = set()
        with self.session() as s:
            for i in range(0, len(ids_given), 500):  # bounded IN lists (SQLite's variable limit)
                rows = s.scalars(select(DocumentRow).where(DocumentRow.id.in_(ids_given[i : i + 500])))
                changed = [r.id for r in rows if r.text != given[r.id]]
                if changed:
                    held |= set(s.scalars(select(AnnotationRow.item).where(AnnotationRow.item.in_(changed))))
                    held |= set(
                        s.scalars(select(DoccanoExampleRow.note_id).where(DoccanoExampleRow.note_id.in_(changed)))
                    )
                    held |= set(s.scalars(select(AdjudicationRow.item).where(AdjudicationRow.item.in_(changed))))
        if held:
            ids = sorted(held)
            shown = ", ".join(repr(i) for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            raise StoreError(
                f"{len(ids)} note(s) already annotated or pushed to Doccano would get another text: {shown}; their "
                "spans' offsets would no longer match, so nothing was stored. Keep the stored text (re-run deid "
                "with the same --key / CLINICAL_NLP_DEID_KEY) or give the changed notes new ids"
            )

    def get_note(self, note_id: str) -> Note:
        with self.session() as s:
            row = s.get(DocumentRow, note_id)
            if row is None:
                raise StoreError(f"note {note_id!r} is not in the store")
            return Note(row.id, row.text, dict(row.meta or {}))

    def notes(self, ids: Iterable[str] | None = None) -> list[Note]:
        with self.session() as s:
            stmt = select(DocumentRow).order_by(DocumentRow.id)
            if ids is not None:
                stmt = stmt.where(DocumentRow.id.in_(list(ids)))
            return [Note(r.id, r.text, dict(r.meta or {})) for r in s.scalars(stmt)]

    def is_deidentified(self, note_id: str, text: str | None = None) -> bool:
        """Whether a de-identification record holds the hash of exactly ``text`` (default: the stored text)."""
        with self.session() as s:
            record = s.get(DeidRecordRow, note_id)
            if record is None:
                return False
            if text is None:
                row = s.get(DocumentRow, note_id)
                if row is None:
                    return False
                text = row.text
            return record.text_sha256 == _sha256(text)

    def mark_deidentified(
        self, note_ids: Iterable[str], *, method: str = "attested free of PHI by the caller", actor: str | None = None
    ) -> None:
        """Record the stored texts of these notes as de-identified."""
        with self.session() as s:
            for nid in note_ids:
                row = s.get(DocumentRow, nid)
                if row is not None:
                    _record_deid(s, nid, row.text, method, actor)

    def deidentified_ids(self) -> set[str]:
        """Ids of the stored notes whose stored text a de-identification record holds (one query)."""
        with self.session() as s:
            return {
                doc.id
                for record, doc in s.execute(
                    select(DeidRecordRow, DocumentRow).join(DocumentRow, DocumentRow.id == DeidRecordRow.note_id)
                )
                if record.text_sha256 == _sha256(doc.text)
            }

    def deid_methods(self) -> dict[str, int]:
        """How many notes each de-identification method (or attestation) covers, for still-matching texts."""
        out: dict[str, int] = {}
        with self.session() as s:
            for record, doc in s.execute(
                select(DeidRecordRow, DocumentRow).join(DocumentRow, DocumentRow.id == DeidRecordRow.note_id)
            ):
                if record.text_sha256 == _sha256(doc.text):
                    out[record.method] = out.get(record.method, 0) + 1
        return out

    # annotations ---------------------------------------------------------------
    def save_annotation(
        self, annotation: Annotation, *, kind: str = "human", supersede_source: bool = False
    ) -> dict[str, str]:
        """Insert or replace the annotation of (item, annotator, round, kind); returns ``{key: content hash}``
        of the rows written and removed (removed rows map to ``""``) for the audit log.

        ``supersede_source``: also remove the item's other rows of this kind and source (an amended
        adjudication by another expert or in another round replaces the earlier one).
        """
        return self.save_annotations([annotation], kind=kind, supersede_source=supersede_source)

    def save_annotations(
        self, annotations: Sequence[Annotation], *, kind: str = "human", supersede_source: bool = False
    ) -> dict[str, str]:
        """:meth:`save_annotation` for many, in one transaction (all or none are written)."""
        changed: dict[str, str] = {}
        with self.session() as s:
            existing: dict[tuple[str, str, int], AnnotationRow] = {}
            items = sorted({a.item for a in annotations})
            for start in range(0, len(items), 500):  # one query per 500 items, not one per row
                for row in s.scalars(
                    select(AnnotationRow).where(
                        AnnotationRow.kind == kind, AnnotationRow.item.in_(items[start : start + 500])
                    )
                ):
                    existing[(row.item, row.annotator, row.round)] = row
            for annotation in annotations:
                self._save_one(s, annotation, kind, supersede_source, changed, existing)
        return changed

    @staticmethod
    def _save_one(
        s: Session,
        annotation: Annotation,
        kind: str,
        supersede_source: bool,
        changed: dict[str, str],
        existing: dict[tuple[str, str, int], AnnotationRow],
    ) -> None:
        """Write one annotation; ``existing`` holds the rows of its kind already there, by (item, annotator, round)."""
        payload: Any = (
            spans_to_json(annotation.payload)
            if isinstance(annotation.payload, tuple)
            else json.loads(json.dumps(annotation.payload, default=str))
        )
        rnd = annotation.round or 0
        if supersede_source:
            stale = s.scalars(
                select(AnnotationRow).where(
                    AnnotationRow.item == annotation.item,
                    AnnotationRow.kind == kind,
                    AnnotationRow.source == annotation.source,
                )
            ).all()
            for old in stale:
                if (old.annotator, old.round) != (annotation.annotator, rnd):
                    changed[annotation_key(old.item, old.annotator, old.round, old.kind)] = ""
                    s.execute(delete(AnnotationRow).where(AnnotationRow.id == old.id))
                    existing.pop((old.item, old.annotator, old.round), None)
        row = existing.get((annotation.item, annotation.annotator, rnd))
        if row is None:
            row = AnnotationRow(item=annotation.item, annotator=annotation.annotator, round=rnd, kind=kind)
            s.add(row)
            existing[(annotation.item, annotation.annotator, rnd)] = row
        row.payload = payload
        row.source = annotation.source
        row.model_version = annotation.model_version
        row.guideline_version = annotation.guideline_version
        row.edits = dict(annotation.edits) if annotation.edits is not None else None
        row.timestamp = annotation.timestamp
        row.relations = [dict(r) for r in annotation.relations] or None
        changed[annotation_key(row.item, row.annotator, rnd, kind)] = row_hash(row)

    def history(self, table: type[Any], columns: Sequence[str], *, item: str | None = None) -> list[dict[str, Any]]:
        """Rows of an append-only event table (``id`` order, optionally of one ``item``) as dicts of ``columns``."""
        with self.session() as s:
            stmt = select(table).order_by(table.id)
            if item is not None:
                stmt = stmt.where(table.item == item)
            return [{c: getattr(r, c) for c in columns} for r in s.scalars(stmt)]

    def annotation_hashes(self) -> dict[str, str]:
        """``{key: content hash}`` of every annotation row (what ``audit verify`` compares with the log)."""
        with self.session() as s:
            return {
                annotation_key(r.item, r.annotator, r.round, r.kind): row_hash(r)
                for r in s.scalars(select(AnnotationRow))
            }

    def annotations(
        self,
        *,
        kind: str | None = None,
        round: int | None = None,
        item: str | None = None,
        annotator: str | None = None,
    ) -> list[Annotation]:
        with self.session() as s:
            stmt = select(AnnotationRow).order_by(AnnotationRow.item, AnnotationRow.annotator)
            if kind is not None:
                stmt = stmt.where(AnnotationRow.kind == kind)
            if round is not None:
                stmt = stmt.where(AnnotationRow.round == round)
            if item is not None:
                stmt = stmt.where(AnnotationRow.item == item)
            if annotator is not None:
                stmt = stmt.where(AnnotationRow.annotator == annotator)
            out = []
            for r in s.scalars(stmt):
                payload: Any = r.payload
                if isinstance(payload, list):
                    payload = spans_from_json(payload)
                out.append(
                    Annotation(
                        item=r.item,
                        annotator=r.annotator,
                        payload=payload,
                        source=r.source,
                        guideline_version=r.guideline_version,
                        round=r.round,
                        timestamp=r.timestamp,
                        model_version=r.model_version,
                        edits=r.edits,
                        relations=tuple(r.relations or ()),
                    )
                )
            return out


#: columns added after the first release: (table, column, SQL type); added to an older store on open
_LATER_COLUMNS = (
    ("annotations", "relations", "JSON"),
    ("privacy_reviews", "orig_start", "INTEGER"),
    ("privacy_reviews", "orig_end", "INTEGER"),
    ("privacy_reviews", "source_sha256", "VARCHAR(64)"),
    ("privacy_reviews", "restored", "BOOLEAN"),
    ("privacy_reviews", "surrogate", "VARCHAR(300)"),
)


def _add_missing_columns(engine: Any) -> None:
    """Bring a store made by an earlier version up to date (nullable columns only: no data changes)."""
    from sqlalchemy import inspect, text

    names = inspect(engine)
    for table, column, sql_type in _LATER_COLUMNS:
        if column not in {c["name"] for c in names.get_columns(table)}:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_sha256(text: str) -> str:
    """The hash a de-identification record holds for a note's text."""
    return _sha256(text)


def _record_deid(s: Any, note_id: str, text: str, method: str, actor: str | None) -> None:
    record = s.get(DeidRecordRow, note_id)
    if record is None:
        s.add(DeidRecordRow(note_id=note_id, text_sha256=_sha256(text), method=method, actor=actor))
    else:
        record.text_sha256, record.method, record.actor, record.recorded_at = _sha256(text), method, actor, utcnow()
