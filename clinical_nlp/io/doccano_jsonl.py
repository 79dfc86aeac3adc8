"""Doccano JSONL for sequence labeling (import/export format).

A row is ``{"text": ..., "label": [[start, end, "Label"], ...], ...}``; newer
Doccano exports use ``"entities": [{"start_offset", "end_offset", "label"}]``,
which is read too. Our note id is written as ``note_id`` (Doccano keeps extra
keys as example metadata; its own integer ``id`` is ignored on read when a
``note_id`` is present) together with the note metadata.

Attributes follow guidelines/annotation_guideline.md: each non-default value
is an extra label on exactly the same offsets, with the short names of
:mod:`clinical_nlp.io.attribute_labels` (``NEG``, ``HIST``, ``FAM`` …; the long form
``negation:negated`` is read too). Values outside the guideline's lists (e.g. NegEx's
``temporality:not particular``) are kept in the long form. On read each attribute
label is attached to every entity span with those offsets; one without such a
span is an error naming the document and the offsets.

Lossy: discontinuous spans become their outer range; relations, span ids and
scores are dropped; attributes at their default value are not written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError, OffsetMismatchError
from clinical_nlp.io.attribute_labels import attribute_label, parse_attribute_label
from clinical_nlp.io.jsonl import read_unique_docs, row_to_note, write_rows
from clinical_nlp.types import (
    ATTRIBUTE_DEFAULTS,
    ATTRIBUTE_VALUES,
    AnnotatedNote,
    Note,
    Span,
    verify_span,
)

#: keys of a Doccano row that are structure, not metadata
_STRUCTURE = frozenset({"id", "note_id", "text", "label", "labels", "entities", "relations", "Comments", "comments"})


def document_to_doccano(doc: AnnotatedNote) -> dict[str, Any]:
    """The Doccano row of one document."""
    labels: list[list[Any]] = []
    for span in doc.spans:
        labels.append([span.start, span.end, span.label])
        for name, value in span.attributes.items():
            if name in ATTRIBUTE_VALUES and value != ATTRIBUTE_DEFAULTS.get(name):
                entry = [span.start, span.end, attribute_label(name, value)]
                if entry not in labels:
                    labels.append(entry)
    row: dict[str, Any] = {"note_id": doc.id}
    row.update({k: v for k, v in doc.note.metadata.items() if k not in _STRUCTURE})
    row["text"] = doc.text
    row["label"] = labels
    return row


def _raw_labels(row: Mapping[str, Any], doc_id: str, source: str, line: int) -> list[tuple[int, int, str]]:
    out = []
    if "entities" in row and isinstance(row["entities"], list):
        for k, ent in enumerate(row["entities"]):
            try:
                out.append((int(ent["start_offset"]), int(ent["end_offset"]), str(ent["label"])))
            except (KeyError, TypeError, ValueError):
                raise InputFormatError(
                    f"document {doc_id!r}: entity #{k} needs start_offset, end_offset, label: {ent!r}",
                    source=source,
                    line=line,
                ) from None
        return out
    raw = row.get("label", row.get("labels", []))
    if not isinstance(raw, list):
        raise InputFormatError(
            f"document {doc_id!r}: 'label' must be a list of [start, end, label]", source=source, line=line
        )
    for k, item in enumerate(raw):
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise InputFormatError(
                f"document {doc_id!r}: label #{k} is not [start, end, label]: {item!r}", source=source, line=line
            )
        try:
            out.append((int(item[0]), int(item[1]), str(item[2])))
        except (TypeError, ValueError):
            raise InputFormatError(
                f"document {doc_id!r}: label #{k} has non-integer offsets: {item!r}", source=source, line=line
            ) from None
    return out


def doccano_row_to_annotated(
    row: Mapping[str, Any], *, source: str = "<row>", line: int = 0, allow_empty: bool = False
) -> AnnotatedNote:
    """Build an annotated note from one Doccano row (attribute labels folded into spans)."""
    doc_id = row.get("note_id", row.get("id"))
    if doc_id in (None, ""):
        doc_id = f"{Path(source).stem}-{line}"
    meta_row = {k: v for k, v in row.items() if k not in _STRUCTURE}
    meta_row["id"] = str(doc_id)
    if "text" in row:
        meta_row["text"] = row["text"]
    note = row_to_note(meta_row, source=source, line=line, allow_empty=allow_empty)
    note = Note(note.id, note.text, {k: v for k, v in note.metadata.items() if k not in {"id", "text"}})
    entities: list[Span] = []
    attrs: list[tuple[int, int, str, str]] = []
    for start, end, label in _raw_labels(row, note.id, source, line):
        parsed = parse_attribute_label(label)
        if parsed:
            attrs.append((start, end, *parsed))
            continue
        try:
            entities.append(verify_span(note.text, Span(start, end, label), doc_id=note.id))
        except OffsetMismatchError as exc:
            raise OffsetMismatchError(str(exc), source=source, line=line) from None
    for start, end, name, value in attrs:
        if not value:
            raise InputFormatError(
                f"document {note.id!r}: attribute label {name}: at [{start}, {end}) has no value",
                source=source,
                line=line,
            )
        hits = [i for i, s in enumerate(entities) if s.start == start and s.end == end]
        if not hits:
            raise InputFormatError(
                f"document {note.id!r}: attribute label {name}:{value} at [{start}, {end}) "
                "has no entity span on the same offsets",
                source=source,
                line=line,
            )
        for i in hits:
            entities[i] = entities[i].with_attributes(**{name: value})
    return AnnotatedNote(note, tuple(entities))


def read_doccano_jsonl(path: Path | str, *, allow_empty: bool = False) -> list[AnnotatedNote]:
    """Read a Doccano sequence-labeling JSONL export/import file."""
    return read_unique_docs(
        path, lambda row, source, line: doccano_row_to_annotated(row, source=source, line=line, allow_empty=allow_empty)
    )


def write_doccano_jsonl(docs: Iterable[AnnotatedNote], path: Path | str) -> int:
    """Write documents as Doccano JSONL atomically; returns the count."""
    return write_rows(path, (document_to_doccano(d) for d in docs))
