"""JSONL corpora: one document per line (the format of ``../shared/corpora``).

A row has ``id`` and ``text``; optional ``spans`` (``start``, ``end``, ``label``,
``text``, attribute keys, ``fragments``), ``relations`` and any metadata keys
(``patient``, ``date``, ``note_type`` …), which are kept in ``Note.metadata``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError, OffsetMismatchError
from clinical_nlp.io._common import check_text
from clinical_nlp.types import AnnotatedNote, Note, Span, verify_span

#: Keys that are structure, not metadata.
RESERVED_KEYS = frozenset({"id", "text", "spans", "relations"})


def iter_json_rows(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, row)``; bad UTF-8 or JSON raise naming file and line."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputFormatError("file not found", source=str(path)) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                # a UTF-8 byte-order mark (Windows editors, spreadsheet exports) is not JSON: skip it
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputFormatError(
                    f"not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
                    "convert the file to UTF-8",
                    source=str(path),
                    line=number,
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(
                    f"invalid JSON: {exc.msg} (column {exc.colno})", source=str(path), line=number
                ) from None
            if not isinstance(row, dict):
                raise InputFormatError(
                    f"expected a JSON object, got {type(row).__name__}", source=str(path), line=number
                )
            yield number, row


def row_to_note(
    row: Mapping[str, Any], *, source: str = "<row>", line: int | None = None, allow_empty: bool = False
) -> Note:
    """Build a :class:`Note` from a row, checking ``id`` and ``text``."""
    if "id" not in row or row["id"] in (None, ""):
        raise InputFormatError("row has no 'id'", source=source, line=line)
    if "text" not in row:
        raise InputFormatError(f"row {row['id']!r} has no 'text'", source=source, line=line)
    text = row["text"]
    if not isinstance(text, str):
        raise InputFormatError(f"row {row['id']!r}: 'text' must be a string", source=source, line=line)
    check_text(row["id"], text, source=source, line=line, allow_empty=allow_empty, what="row")
    meta = {k: v for k, v in row.items() if k not in RESERVED_KEYS}
    return Note(str(row["id"]), text, meta)


def verified_spans(
    raw: Any,
    text: str,
    doc_id: str,
    *,
    source: str = "<row>",
    line: int | None = None,
    strict_text: bool = True,
    owner: str = "row",
    span_of: str = "",
) -> list[Span]:
    """The spans of a row's ``spans`` value (missing = none), each verified against ``text``.

    Errors name the file and line; format errors start ``"<owner> '<doc_id>': "`` and offset
    errors ``"span #<k><span_of>: "``.
    """
    raw = raw or []
    if not isinstance(raw, list):
        raise InputFormatError(f"{owner} {doc_id!r}: 'spans' must be a list", source=source, line=line)
    spans = []
    for k, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InputFormatError(f"{owner} {doc_id!r}: span #{k} is not an object", source=source, line=line)
        try:
            span = Span.from_dict(item)
            spans.append(verify_span(text, span, doc_id=doc_id, strict_text=strict_text))
        except OffsetMismatchError as exc:
            raise OffsetMismatchError(f"span #{k}{span_of}: {exc}", source=source, line=line) from None
    return spans


def row_to_annotated(
    row: Mapping[str, Any],
    *,
    source: str = "<row>",
    line: int | None = None,
    strict_text: bool = True,
    allow_empty: bool = False,
) -> AnnotatedNote:
    """Build an :class:`AnnotatedNote`; every span is verified against the text."""
    note = row_to_note(row, source=source, line=line, allow_empty=allow_empty)
    spans = verified_spans(row.get("spans"), note.text, note.id, source=source, line=line, strict_text=strict_text)
    relations = tuple(r for r in (row.get("relations") or []) if isinstance(r, Mapping))
    return AnnotatedNote(note, tuple(spans), relations)


def iter_jsonl(path: Path | str, *, strict_text: bool = True, allow_empty: bool = False) -> Iterator[AnnotatedNote]:
    """Stream annotated notes from a JSONL file (constant memory).

    ``allow_empty`` accepts rows whose text is empty (Chia has some); by
    default an empty text is an input error naming the file and line.
    """
    for number, row in iter_json_rows(path):
        yield row_to_annotated(row, source=str(path), line=number, strict_text=strict_text, allow_empty=allow_empty)


def read_jsonl(path: Path | str, *, strict_text: bool = True, allow_empty: bool = False) -> list[AnnotatedNote]:
    """Read a whole JSONL corpus; duplicate ids are an error."""
    return read_unique_docs(
        path,
        lambda row, source, line: row_to_annotated(
            row, source=source, line=line, strict_text=strict_text, allow_empty=allow_empty
        ),
    )


def labels_file_hint(row: Mapping[str, Any]) -> str:
    """What to say when a repeated id comes from a pull's labels file (a row per note and annotator)."""
    if "annotator" not in row:
        return ""
    return (
        "; this is a pull's labels file (a row per note and annotator): use their consensus, "
        "'clinical-nlp agree -i LABELS -o REPORT.json --gold GOLD.jsonl', or the project's gold"
    )


def read_unique_docs(
    path: Path | str, parse: Callable[[dict[str, Any], str, int], AnnotatedNote]
) -> list[AnnotatedNote]:
    """Every row of a JSON-lines file through ``parse(row, source, line)``; a repeated id is an error."""
    docs = []
    seen: dict[str, int] = {}
    for number, row in iter_json_rows(path):
        doc = parse(row, str(path), number)
        if doc.id in seen:
            raise InputFormatError(
                f"duplicate id {doc.id!r} (first on line {seen[doc.id]}){labels_file_hint(row)}",
                source=str(path),
                line=number,
            )
        seen[doc.id] = number
        docs.append(doc)
    return docs


def annotated_to_row(doc: AnnotatedNote) -> dict[str, Any]:
    """The JSONL row of a document (metadata keys first, then id/text/spans)."""
    row: dict[str, Any] = {"id": doc.note.id}
    row.update({k: v for k, v in doc.note.metadata.items() if k not in RESERVED_KEYS})
    row["text"] = doc.note.text
    row["spans"] = [s.to_dict() for s in doc.spans]
    if doc.relations:
        row["relations"] = [dict(r) for r in doc.relations]
    return row


@contextmanager
def atomic_writer(path: Path | str, mode: str = "w") -> Iterator[Any]:
    """Write to a temp file beside ``path`` and rename on success (no partial outputs); a project's config,
    audit files and SQLite stores are never replaced (:func:`~clinical_nlp.io.paths.refuse_protected`)."""
    from clinical_nlp.io.paths import refuse_protected

    path = Path(path)
    refuse_protected(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_rows(path: Path | str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write JSON rows atomically; returns the row count."""
    count = 0
    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_jsonl(path: Path | str, docs: Iterable[AnnotatedNote]) -> int:
    """Write annotated notes as JSONL atomically; returns the document count."""
    return write_rows(path, (annotated_to_row(d) for d in docs))
