"""Rows of notes from JSONL, a CSV table of notes or Parquet: one reader for every command taking notes.

A row is a dict with ``id``, ``text``, optional ``spans`` / ``relations`` and metadata keys, as in
JSONL. In a table (CSV, Parquet) the columns ``spans``, ``relations`` and ``metadata`` may hold JSON
text (``preannotate -o X.parquet`` writes them so, whatever the rows' metadata); ``metadata``'s keys
become the row's. ``doc_id`` / ``doc_text`` are read as ``id`` / ``text``. Every problem names the
file and the line (or data row).

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "notes.csv"
    >>> _ = p.write_text('id,text,spans\\nn1,No fever,"[{""start"": 3, ""end"": 8, ""label"": ""Condition""}]"\\n')
    >>> [row["spans"][0]["label"] for _, row in iter_note_rows(p)]
    ['Condition']
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.jsonl import iter_json_rows

#: Table columns that may hold JSON text, and the type their value must decode to.
JSON_COLUMNS: dict[str, type] = {"spans": list, "relations": list, "metadata": dict}


def is_parquet(path: Path | str) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def _plain(value: Any) -> Any:
    """A table cell as a JSON-like value: numpy arrays and scalars become lists and Python numbers."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def missing_cell(value: Any) -> bool:
    """An empty table cell: None, NaN or pandas' NA."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def table_row(record: Mapping[str, Any], *, source: str, line: int) -> dict[str, Any]:
    """A table record as a note row: JSON columns decoded, ``metadata`` merged, empty cells left out."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        key = str(key)
        value = _plain(value)
        if missing_cell(value) or (value == "" and key not in ("id", "text", "doc_id", "doc_text")):
            continue
        kind = JSON_COLUMNS.get(key)
        if kind is not None and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"column {key!r} is not JSON ({exc.msg})", source=source, line=line) from None
        if kind is not None and value is not None and not isinstance(value, kind):
            raise InputFormatError(
                f"column {key!r} must hold a JSON {'list' if kind is list else 'object'}", source=source, line=line
            )
        row[key] = value
    for key, value in (row.pop("metadata", None) or {}).items():
        row.setdefault(str(key), value)
    for wanted, alias in (("id", "doc_id"), ("text", "doc_text")):
        if wanted not in row and alias in row:
            row[wanted] = row.pop(alias)
    return row


def _parquet_rows(path: Path, batch_rows: int) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.exists():
        raise InputFormatError("file not found", source=str(path))
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputFormatError(f"not a readable Parquet file ({exc})", source=str(path)) from None
    number = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for record in batch.to_pylist():
            number += 1
            yield number, table_row(record, source=str(path), line=number)


def iter_note_rows(path: Path | str, *, batch_rows: int = 1024) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line_or_row_number, row)`` from JSONL, a ``.csv`` notes table or ``.parquet``."""
    path = Path(path)
    if is_parquet(path):
        yield from _parquet_rows(path, batch_rows)
        return
    if path.suffix.lower() == ".csv":
        from clinical_nlp.io.notes_table import iter_csv_note_rows

        for number, record in iter_csv_note_rows(path):
            yield number, table_row(record, source=str(path), line=number)
        return
    yield from iter_json_rows(path)


#: The columns of a Parquet file of note rows (``preannotate -o X.parquet``): the same for every row,
#: so rows whose metadata keys or value types differ are all kept whole.
PARQUET_COLUMNS = ("id", "text", "spans", "relations", "model_version", "metadata")


def parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(name, pa.string()) for name in PARQUET_COLUMNS])


def parquet_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A note row as a :data:`PARQUET_COLUMNS` record; :func:`table_row` reads it back to the same row."""
    meta = {k: v for k, v in row.items() if k not in PARQUET_COLUMNS}
    dumps = lambda v: json.dumps(v, ensure_ascii=False, default=str)  # noqa: E731
    return {
        "id": str(row["id"]),
        "text": row.get("text"),
        "spans": dumps(row.get("spans") or []),
        "relations": dumps(row["relations"]) if "relations" in row else None,
        "model_version": row.get("model_version"),
        "metadata": dumps(meta) if meta else None,
    }


def table_columns(path: Path | str) -> list[str]:
    """The column names of a ``.parquet`` or ``.csv`` table (its header), without reading its rows."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError("file not found", source=str(path))
    if is_parquet(path):
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise InputFormatError(f"not a readable Parquet file ({exc})", source=str(path)) from None
    import csv

    with path.open(encoding="utf-8-sig", newline="", errors="replace") as handle:
        return [h.strip() for h in next(csv.reader(handle), [])]


__all__ = [
    "JSON_COLUMNS",
    "PARQUET_COLUMNS",
    "is_parquet",
    "missing_cell",
    "iter_note_rows",
    "parquet_record",
    "parquet_schema",
    "table_columns",
    "table_row",
]
