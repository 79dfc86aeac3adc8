"""Read and check the JSONL rows of the relation commands (Chia form: spans with ids, relations by id).

Every problem is an :class:`~clinical_nlp.errors.InputFormatError` naming the file, line and note:
a row without an id or string text, a duplicate note id, spans that are not a list of objects, a
span without an id or label, offsets that are not integers inside the text, two spans of a note with
the same id (a link to it would be ambiguous) and, in training files, a relation whose arguments are
not span ids of its note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.jsonl import labels_file_hint
from clinical_nlp.io.note_rows import iter_note_rows


def _offset(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _span_problem(span: Any, text: str) -> str | None:
    if not isinstance(span, dict):
        return f"span {span!r} is not an object"
    if "id" not in span or isinstance(span["id"], (dict, list, bool)) or span["id"] is None:
        where = f"{span.get('start')!r}-{span.get('end')!r} {span.get('label')!r}"
        return (f"span {where} needs an 'id': relations refer to span ids "
                "('preannotate --relations default' writes spans with ids and their relations)")  # fmt: skip
    if not isinstance(span.get("label"), str) or not span["label"]:
        return f"span {span['id']!r} needs a string 'label'"
    start, end = _offset(span.get("start")), _offset(span.get("end"))
    if start is None or end is None:
        got = f"{span.get('start')!r}, {span.get('end')!r}"
        return f"span {span['id']!r} needs integer 'start' and 'end' offsets, got {got}"
    if not 0 <= start <= end <= len(text):
        return f"span {span['id']!r}: offsets {start}-{end} are not inside the text ({len(text)} characters)"
    return None


def _relation_problem(rel: Any, ids: set[str]) -> str | None:
    if not isinstance(rel, dict) or not isinstance(rel.get("type"), str):
        return f"relation {rel!r} needs a string 'type'"
    if "arg1" in rel and "arg2" in rel:
        args = [rel["arg1"], rel["arg2"]]
    elif isinstance(rel.get("args"), list) and len(rel["args"]) >= 2:
        args = rel["args"]
    else:
        return f"relation {rel!r} needs 'arg1' and 'arg2' (or an 'args' list of at least two span ids)"
    missing = [a for a in args if str(a) not in ids]
    if missing:
        return f"relation {rel.get('id', rel['type'])!r} refers to span id(s) {missing} that the note does not have"
    return None


def read_relation_rows(path: Path | str, *, with_relations: bool = False) -> list[dict]:
    """The rows of ``path``, checked; ``with_relations`` (training files) also checks each relation's ids."""
    rows: list[dict] = []
    seen: set[str] = set()
    for line, row in iter_note_rows(path):
        if "id" not in row or not isinstance(row.get("text"), str):
            raise InputFormatError("row needs an 'id' and a string 'text'", source=str(path), line=line)
        note = str(row["id"])
        if note in seen:
            raise InputFormatError(f"duplicate id {row['id']!r}{labels_file_hint(row)}", source=str(path), line=line)
        seen.add(note)
        spans = row.get("spans") or []
        if not isinstance(spans, list):
            raise InputFormatError(f"note {note!r}: 'spans' must be a list", source=str(path), line=line)
        ids: set[str] = set()
        for span in spans:
            problem = _span_problem(span, row["text"])
            if problem is None and str(span["id"]) in ids:
                problem = f"two spans have the id {span['id']!r} (a relation to it would be ambiguous)"
            if problem:
                raise InputFormatError(f"note {note!r}: {problem}", source=str(path), line=line)
            ids.add(str(span["id"]))
        relations = (row.get("relations") or []) if with_relations else []
        if not isinstance(relations, list):
            raise InputFormatError(f"note {note!r}: 'relations' must be a list", source=str(path), line=line)
        for rel in relations:
            problem = _relation_problem(rel, ids)
            if problem:
                raise InputFormatError(f"note {note!r}: {problem}", source=str(path), line=line)
        rows.append(row)
    if not rows:
        raise InputFormatError("no rows (empty input)", source=str(path))
    return rows
