"""A CSV table of notes, one row per note: the shape of most EHR extracts.

Columns ``id`` and ``text`` (or this package's ``doc_id`` / ``doc_text``); every other column
becomes a metadata key (``patient``, ``date``, ``note_type`` …), its value kept as text so an
identifier such as ``007`` keeps its zeros. Read as a stream (``csv``), so a large extract is not
loaded at once; quoted fields may hold line breaks. A UTF-8 byte-order mark is accepted.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "notes.csv"
    >>> _ = p.write_text('id,text,patient\\nn1,"No fever, no cough",007\\n')
    >>> list(iter_csv_note_rows(p))
    [(2, {'id': 'n1', 'text': 'No fever, no cough', 'patient': '007'})]
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError

#: The column names read as a note's id and text, in order of preference.
ID_COLUMNS = ("id", "doc_id")
TEXT_COLUMNS = ("text", "doc_text")


def note_columns(header: list[str], *, source: str) -> tuple[str, str]:
    """The (id, text) column names of a notes table's header, or an error naming what it has."""
    id_col = next((c for c in ID_COLUMNS if c in header), None)
    text_col = next((c for c in TEXT_COLUMNS if c in header), None)
    if id_col is None or text_col is None:
        raise InputFormatError(
            f"a comma-separated notes table needs an 'id' and a 'text' column; this header has {header}",
            source=source,
            line=1,
        )
    return id_col, text_col


def _first_bad_line(path: Path) -> int | None:
    """The first physical line that is not UTF-8 (the text reader decodes ahead of the CSV parser)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def iter_csv_note_rows(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)`` with ``row`` = ``{"id", "text", <metadata columns>}``; empty cells are left out."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputFormatError("file not found", source=source)
    csv.field_size_limit(sys.maxsize)  # a note may be far longer than csv's 128 kB default field
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        line = 1
        try:
            header = next(reader, None)
            if header is None:
                raise InputFormatError("empty file: no header row", source=source)
            header = [h.strip() for h in header]
            id_col, text_col = note_columns(header, source=source)
            line = reader.line_num
            for record in reader:
                if not any(cell.strip() for cell in record):
                    line = reader.line_num
                    continue
                if len(record) != len(header):
                    raise InputFormatError(
                        f"{len(record)} fields where the header has {len(header)}", source=source, line=line + 1
                    )
                cells = dict(zip(header, record, strict=True))
                row: dict[str, Any] = {"id": cells.pop(id_col), "text": cells.pop(text_col)}
                row.update((k, v) for k, v in cells.items() if v != "" and k not in ID_COLUMNS + TEXT_COLUMNS)
                yield line + 1, row
                line = reader.line_num
        except UnicodeDecodeError as exc:
            raise InputFormatError(
                f"not valid UTF-8 ({exc.reason})", source=source, line=_first_bad_line(path)
            ) from None
        except csv.Error as exc:
            raise InputFormatError(f"malformed CSV ({exc})", source=source, line=reader.line_num) from None


__all__ = ["ID_COLUMNS", "TEXT_COLUMNS", "iter_csv_note_rows", "note_columns"]
