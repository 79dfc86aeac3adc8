"""pandas DataFrame: one row per span, and back.

A table without span columns is a table of notes (one row per note; ``id``/``text``, every other
column a metadata key). Span-table columns: ``doc_id``, ``doc_text``, ``metadata`` (JSON string), ``relations``
(JSON string, on every row of a document), ``span_id``, ``start``, ``end``,
``label``, ``span_text``, ``negation``, ``temporality``, ``experiencer``,
``attributes`` (JSON string of the other attributes), ``fragments`` (JSON
string or empty), ``score``, ``source``. A document without spans has one row
with empty span columns, so no note is lost. Files: ``.parquet`` or ``.csv``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError, OffsetMismatchError
from clinical_nlp.io.jsonl import atomic_writer, row_to_annotated
from clinical_nlp.io.note_rows import iter_note_rows, missing_cell, table_columns
from clinical_nlp.io.notes_table import note_columns
from clinical_nlp.types import ATTRIBUTE_VALUES, AnnotatedNote, Note, Span, verify_span

#: A table with any of these columns is a span table; without them, a table of notes.
SPAN_COLUMNS = frozenset({"start", "end", "label"})

COLUMNS = [
    "doc_id",
    "doc_text",
    "metadata",
    "relations",
    "span_id",
    "start",
    "end",
    "label",
    "span_text",
    *ATTRIBUTE_VALUES,
    "attributes",
    "fragments",
    "score",
    "source",
]


def to_dataframe(docs: Iterable[AnnotatedNote]):
    """One row per span (a document without spans: one row with empty span columns)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for doc in docs:
        base = {
            "doc_id": doc.id,
            "doc_text": doc.text,
            "metadata": json.dumps(dict(doc.note.metadata), ensure_ascii=False, default=str),
            "relations": json.dumps([dict(r) for r in doc.relations], ensure_ascii=False, default=str),
        }
        if not doc.spans:
            rows.append(base)
        for s in doc.spans:
            other = {k: v for k, v in s.attributes.items() if k not in ATTRIBUTE_VALUES}
            row = dict(
                base,
                span_id=s.id,
                start=s.start,
                end=s.end,
                label=s.label,
                span_text=s.text,
                attributes=json.dumps(other, ensure_ascii=False) if other else None,
                fragments=json.dumps([list(f) for f in s.fragments]) if s.fragments else None,
                score=s.score,
                source=s.source,
            )
            for name in ATTRIBUTE_VALUES:
                row[name] = s.attributes.get(name)
            rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["start"] = df["start"].astype("Int64")
    df["end"] = df["end"].astype("Int64")
    return df


def _json(value: Any, default: Any, *, doc_id: str, column: str, row: int) -> Any:
    if missing_cell(value) or value == "":
        return default
    try:
        return json.loads(value)
    except (TypeError, json.JSONDecodeError):
        raise InputFormatError(
            f"document {doc_id!r}: column {column!r} is not JSON: {value!r}", source="<dataframe>", line=row
        ) from None


def _notes_table(df) -> list[AnnotatedNote]:
    """A table of notes without span columns (one row per note: id, text, the rest metadata)."""
    from clinical_nlp.io.note_rows import table_row

    note_columns([str(c) for c in df.columns], source="<dataframe>")
    return _unique_notes(
        (k + 1, table_row(rec, source="<dataframe>", line=k + 1)) for k, rec in enumerate(df.to_dict("records"))
    )


def _unique_notes(rows: Iterable[tuple[int, dict[str, Any]]], source: str = "<dataframe>") -> list[AnnotatedNote]:
    """Notes of ``(data row, row)`` pairs (spans verified); a repeated id is an error naming both rows."""
    docs: list[AnnotatedNote] = []
    first: dict[str, int] = {}
    for number, row in rows:
        doc = row_to_annotated(row, source=source, line=number, allow_empty=True)
        if doc.id in first:
            raise InputFormatError(
                f"duplicate id {doc.id!r} (first on line {first[doc.id]})", source=source, line=number
            )
        first[doc.id] = number
        docs.append(doc)
    return docs


def from_dataframe(df) -> list[AnnotatedNote]:
    """Rebuild documents (in first-appearance order) from :func:`to_dataframe`'s layout; a table
    without span columns is a table of notes (``id``/``text`` or ``doc_id``/``doc_text``, the rest metadata)."""
    if not SPAN_COLUMNS & set(df.columns):
        return _notes_table(df)
    missing = [c for c in ("doc_id", "doc_text", "start", "end", "label") if c not in df.columns]
    if missing:
        raise InputFormatError(f"dataframe lacks column(s) {missing}", source="<dataframe>")
    order: list[str] = []
    notes: dict[str, Note] = {}
    rels: dict[str, tuple] = {}
    spans: dict[str, list[Span]] = {}
    for k, rec in enumerate(df.to_dict("records")):
        doc_id = str(rec["doc_id"])
        if doc_id not in notes:
            text = rec["doc_text"]
            if not isinstance(text, str):
                raise InputFormatError(f"document {doc_id!r}: doc_text is missing", source="<dataframe>", line=k)
            meta = _json(rec.get("metadata"), {}, doc_id=doc_id, column="metadata", row=k)
            notes[doc_id] = Note(doc_id, text, meta)
            rels[doc_id] = tuple(_json(rec.get("relations"), [], doc_id=doc_id, column="relations", row=k))
            spans[doc_id] = []
            order.append(doc_id)
        if missing_cell(rec["start"]) or missing_cell(rec["label"]):
            continue
        attrs = _json(rec.get("attributes"), {}, doc_id=doc_id, column="attributes", row=k)
        for name in ATTRIBUTE_VALUES:
            if name in rec and not missing_cell(rec[name]):
                attrs[name] = str(rec[name])
        frags = _json(rec.get("fragments"), None, doc_id=doc_id, column="fragments", row=k)
        try:
            span = Span(
                int(rec["start"]),
                int(rec["end"]),
                str(rec["label"]),
                "" if missing_cell(rec.get("span_text")) else str(rec["span_text"]),
                attrs,
                score=None if missing_cell(rec.get("score")) else float(rec["score"]),
                source=None if missing_cell(rec.get("source")) else str(rec["source"]),
                fragments=tuple(tuple(f) for f in frags) if frags else None,
                id=None if missing_cell(rec.get("span_id")) else str(rec["span_id"]),
            )
            spans[doc_id].append(verify_span(notes[doc_id].text, span, doc_id=doc_id))
        except OffsetMismatchError as exc:
            raise OffsetMismatchError(f"row {k}: {exc}", source="<dataframe>") from None
    return [AnnotatedNote(notes[i], tuple(spans[i]), rels[i]) for i in order]


def write_dataframe(docs: Iterable[AnnotatedNote], path: Path | str) -> int:
    """Write the span table as ``.parquet`` or ``.csv`` atomically; returns the document count."""
    docs = list(docs)
    df = to_dataframe(docs)
    suffix = Path(path).suffix.lower()
    if suffix not in {".parquet", ".csv"}:
        raise InputFormatError("dataframe output must end in .parquet or .csv", source=str(path))
    if suffix == ".parquet":
        _need_pyarrow()
    with atomic_writer(path, "wb") as handle:
        if suffix == ".parquet":
            df.to_parquet(handle, index=False)
        else:
            handle.write(df.to_csv(index=False).encode("utf-8"))
    return len(docs)


def _need_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        from clinical_nlp.errors import MissingOptionalDependencyError

        raise MissingOptionalDependencyError("pyarrow", "scale") from None


def read_dataframe(path: Path | str) -> list[AnnotatedNote]:
    """Read a ``.parquet`` or ``.csv`` span table."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputFormatError("file not found", source=str(path))
    if path.suffix.lower() == ".parquet":
        _need_pyarrow()
    if not SPAN_COLUMNS & set(table_columns(path)):  # a table of notes: streamed, as JSONL rows are
        return _unique_notes(iter_note_rows(path), source=str(path))
    try:
        if path.suffix.lower() == ".parquet":
            _need_pyarrow()
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(
                path,
                dtype=str,  # ids such as "007" keep their zeros; offsets and scores are converted per row
                keep_default_na=False,
                na_values=[""],
                encoding="utf-8-sig",
            )
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"not valid UTF-8: {exc}", source=str(path)) from None
    except ImportError:
        raise
    except Exception as exc:  # pyarrow / parser errors
        raise InputFormatError(f"cannot read table: {exc}", source=str(path)) from None
    try:
        return from_dataframe(df)
    except InputFormatError as exc:
        raise InputFormatError(str(exc).replace("<dataframe>", str(path)), source=None) from None
