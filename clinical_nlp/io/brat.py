"""BRAT standoff: a directory of ``<id>.txt`` / ``<id>.ann`` pairs.

Supported ``.ann`` lines:

* ``T1<TAB>Label 0 5;9 14<TAB>text`` text-bound spans, discontinuous pieces
  separated by ``;`` (kept as :attr:`Span.fragments`);
* ``R1<TAB>Type Arg1:T1 Arg2:T2`` binary relations (``{"id","type","arg1","arg2"}``);
* ``*<TAB>OR T1 T2 T3`` n-ary equivalence/OR groups (``{"id","type","args"}``);
* ``A1<TAB>Negation T1 negated`` attributes; the attribute names of
  :data:`clinical_nlp.types.ATTRIBUTE_VALUES` are accepted case-insensitively
  (``Negation`` → ``negation``); a value-less ``A1<TAB>Negated T1`` means
  ``negation=negated``. Other attributes are kept under their own name.
* ``#1<TAB>AnnotatorNotes T1<TAB>note`` notes are ignored on read.

Document metadata (everything in ``Note.metadata``) is written to an optional
``<id>.meta.json`` beside the pair so BRAT → JSONL → BRAT keeps it; plain BRAT
folders without it read fine. Attributes at their default value are written too,
so a round trip is exact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError, OffsetMismatchError
from clinical_nlp.io._common import check_text, read_utf8
from clinical_nlp.io.jsonl import atomic_writer
from clinical_nlp.types import ATTRIBUTE_VALUES, AnnotatedNote, Note, Span, verify_span

_ATTR_ALIASES = {name.lower(): name for name in ATTRIBUTE_VALUES}
#: value-less BRAT attributes (``A1 Negated T1``) and what they mean
_FLAG_ATTRS = {
    "negated": ("negation", "negated"),
    "possible": ("negation", "possible"),
    "historical": ("temporality", "historical"),
    "hypothetical": ("temporality", "hypothetical"),
    "family": ("experiencer", "family"),
}
_OFFSETS = re.compile(r"^\d+ \d+(;\d+ \d+)*$")


def _offset_pair(piece: str) -> tuple[int, int]:
    """``"12 17"`` -> ``(12, 17)`` (the caller has checked the shape with a regex)."""
    start, end = piece.split()
    return int(start), int(end)


def _parse_ann(ann_path: Path, text: str, doc_id: str) -> tuple[list[Span], list[dict[str, Any]]]:
    source = str(ann_path)
    content = read_utf8(ann_path)
    spans: dict[str, Span] = {}
    order: list[str] = []
    attrs: list[tuple[int, str, str, str]] = []
    relations: list[dict[str, Any]] = []
    n_equiv = 0  # BRAT equivalence lines have no own id; they are numbered *0, *1 … on read
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        ident, _, rest = line.partition("\t")
        if ident.startswith("T"):
            parts = rest.split("\t")
            if len(parts) < 1 or " " not in parts[0]:
                raise InputFormatError(f"malformed text-bound line {line!r}", source=source, line=number)
            label, _, offsets = parts[0].partition(" ")
            if not _OFFSETS.match(offsets):
                raise InputFormatError(f"span {ident}: malformed offsets {offsets!r}", source=source, line=number)
            pieces = [_offset_pair(piece) for piece in offsets.split(";")]
            claimed = parts[1] if len(parts) > 1 else ""
            try:
                span = Span(
                    min(a for a, _ in pieces),
                    max(b for _, b in pieces),
                    label,
                    fragments=tuple(pieces) if len(pieces) > 1 else None,
                    id=ident,
                )
                span = verify_span(text, span, doc_id=doc_id)  # fills in the covered text
            except OffsetMismatchError as exc:
                raise OffsetMismatchError(f"span {ident}: {exc}", source=source, line=number) from None
            # BRAT writes line breaks/tabs of the covered text as spaces: compare whitespace-insensitively
            if (
                claimed
                and claimed.split() != span.text.split()
                and (span.fragments is None or sorted(claimed.split()) != sorted(span.text.split()))
            ):
                raise OffsetMismatchError(
                    f"span {ident}: document {doc_id!r}: span {label!r} {offsets} covers {span.text!r} "
                    f"but claims {claimed!r}",
                    source=source,
                    line=number,
                )
            if span.fragments is not None and claimed and claimed.split() != span.text.split():
                # keep the annotator's piece order ("infection vaginal"), as JSONL does
                span = Span(span.start, span.end, span.label, claimed, fragments=span.fragments, id=ident)
            if ident in spans:
                raise InputFormatError(f"duplicate span id {ident}", source=source, line=number)
            spans[ident] = span
            order.append(ident)
        elif ident.startswith("A") or ident.startswith("M"):
            fields = rest.split()
            if len(fields) not in (2, 3):
                raise InputFormatError(f"malformed attribute line {line!r}", source=source, line=number)
            name, target = fields[0], fields[1]
            value = fields[2] if len(fields) == 3 else ""
            attrs.append((number, name, target, value))
        elif ident.startswith("R"):
            fields = rest.split()
            if len(fields) != 3 or not fields[1].startswith("Arg1:") or not fields[2].startswith("Arg2:"):
                raise InputFormatError(f"malformed relation line {line!r}", source=source, line=number)
            relations.append({"id": ident, "type": fields[0], "arg1": fields[1][5:], "arg2": fields[2][5:]})
        elif ident.startswith("*"):
            fields = rest.split()
            if len(fields) < 2:
                raise InputFormatError(f"malformed equivalence line {line!r}", source=source, line=number)
            relations.append({"id": f"*{n_equiv}", "type": fields[0], "args": fields[1:]})
            n_equiv += 1
        elif ident.startswith("#") or ident.startswith("E") or ident.startswith("N"):
            continue  # notes, events and normalisations are not part of our model
        else:
            raise InputFormatError(f"unknown annotation line {line!r}", source=source, line=number)
    for number, name, target, value in attrs:
        if target not in spans:
            raise InputFormatError(f"attribute {name} refers to unknown span {target}", source=source, line=number)
        key = _ATTR_ALIASES.get(name.lower(), name)
        if not value:
            if name.lower() in _FLAG_ATTRS:
                key, value = _FLAG_ATTRS[name.lower()]
            else:
                value = "true"
        spans[target] = spans[target].with_attributes(**{key: value})
    for rel in relations:
        args = rel["args"] if "args" in rel else [rel["arg1"], rel["arg2"]]
        missing = [a for a in args if a not in spans]
        if missing:
            raise InputFormatError(
                f"document {doc_id!r}: relation {rel['id']} refers to unknown span(s) {missing}", source=source
            )
    return [spans[i] for i in order], relations


def read_brat_document(txt_path: Path | str, *, allow_empty: bool = False) -> AnnotatedNote:
    """Read one ``.txt`` (and its ``.ann`` / ``.meta.json`` when present)."""
    txt_path = Path(txt_path)
    doc_id = txt_path.stem
    text = read_utf8(txt_path)
    check_text(doc_id, text, source=str(txt_path), allow_empty=allow_empty)
    meta: dict[str, Any] = {}
    meta_path = txt_path.with_suffix(".meta.json")
    if meta_path.exists():
        try:
            meta = json.loads(read_utf8(meta_path).removeprefix("\ufeff"))
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"invalid JSON: {exc.msg}", source=str(meta_path), line=exc.lineno) from None
        doc_id = str(meta.pop("id", doc_id))
    ann_path = txt_path.with_suffix(".ann")
    spans, relations = _parse_ann(ann_path, text, doc_id) if ann_path.exists() else ([], [])
    return AnnotatedNote(Note(doc_id, text, meta), tuple(spans), tuple(relations))


def read_brat(directory: Path | str, *, allow_empty: bool = False) -> list[AnnotatedNote]:
    """Read every ``*.txt`` of a BRAT folder (sorted by name) with its annotations."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputFormatError("BRAT input must be a directory of .txt/.ann pairs", source=str(directory))
    orphans = sorted(p.name for p in directory.glob("*.ann") if not p.with_suffix(".txt").exists())
    if orphans:
        # their annotations would be dropped without a word: a misnamed or missing text file
        shown = ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5 else "")
        raise InputFormatError(
            f"{len(orphans)} .ann file(s) without a .txt of the same name: {shown}", source=str(directory)
        )
    docs = [read_brat_document(p, allow_empty=allow_empty) for p in sorted(directory.glob("*.txt"))]
    if not docs:
        raise InputFormatError("no .txt files found", source=str(directory))
    return docs


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _file_stem(doc_id: str) -> str:
    stem = _SAFE_NAME.sub("_", doc_id).strip(".") or "doc"
    return stem


def document_to_ann(doc: AnnotatedNote) -> str:
    """The ``.ann`` content of one document (span ids ``T<n>`` kept or assigned)."""
    lines: list[str] = []
    used = {s.id for s in doc.spans if s.id and re.fullmatch(r"T\d+", s.id)}
    next_id = 1
    ids: list[str] = []
    for span in doc.spans:
        if span.id and re.fullmatch(r"T\d+", span.id) and span.id not in ids:
            ident = span.id
        else:
            while f"T{next_id}" in used:
                next_id += 1
            ident = f"T{next_id}"
            used.add(ident)
        ids.append(ident)
        offsets = ";".join(f"{a} {b}" for a, b in span.pieces)
        surface = (
            span.text if span.fragments is not None and span.text else " ".join(doc.text[a:b] for a, b in span.pieces)
        )
        surface = surface.replace("\r", " ").replace("\n", " ").replace("\t", " ")
        if any(ch.isspace() for ch in span.label):
            raise InputFormatError(f"document {doc.id!r}: label {span.label!r} contains whitespace, which BRAT forbids")
        lines.append(f"{ident}\t{span.label} {offsets}\t{surface}")
    n_attr = 1
    for ident, span in zip(ids, doc.spans, strict=True):
        for name, value in span.attributes.items():
            brat_name = name.capitalize() if name in ATTRIBUTE_VALUES else name
            if any(ch.isspace() for ch in f"{brat_name}{value}"):
                raise InputFormatError(f"document {doc.id!r}: attribute {name}={value!r} contains whitespace")
            lines.append(f"A{n_attr}\t{brat_name} {ident} {value}")
            n_attr += 1
    id_map = {s.id: ident for s, ident in zip(doc.spans, ids, strict=True) if s.id}
    n_rel = 1
    for rel in doc.relations:
        if "args" in rel:
            args = " ".join(id_map.get(str(a), str(a)) for a in rel["args"])
            lines.append(f"*\t{rel.get('type', 'OR')} {args}")
        else:
            rid = str(rel.get("id") or f"R{n_rel}")
            a1, a2 = id_map.get(str(rel["arg1"]), rel["arg1"]), id_map.get(str(rel["arg2"]), rel["arg2"])
            lines.append(f"{rid}\t{rel['type']} Arg1:{a1} Arg2:{a2}")
            n_rel += 1
    return "\n".join(lines) + ("\n" if lines else "")


def write_brat(docs: Iterable[AnnotatedNote], directory: Path | str) -> int:
    """Write ``<id>.txt`` + ``<id>.ann`` (+ ``<id>.meta.json``) per document; returns the count.

    Ids are made file-safe; the original id goes into ``.meta.json`` when it differs.
    Each file is written atomically.
    """
    directory = Path(directory)
    seen: set[str] = set()
    prepared = []
    for doc in docs:  # convert everything first so a bad document leaves no files behind
        stem = _file_stem(doc.id)
        if stem in seen:
            raise InputFormatError(
                f"two documents map to the file name {stem!r} (ids must be unique)", source=str(directory)
            )
        seen.add(stem)
        meta = dict(doc.note.metadata)
        if stem != doc.id:
            meta["id"] = doc.id
        prepared.append((stem, doc, document_to_ann(doc), meta))
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for stem, doc, ann, meta in prepared:
        with atomic_writer(directory / f"{stem}.txt", "w") as handle:
            handle.write(doc.text)
        with atomic_writer(directory / f"{stem}.ann", "w") as handle:
            handle.write(ann)
        meta_path = directory / f"{stem}.meta.json"
        if meta:
            with atomic_writer(meta_path, "w") as handle:
                json.dump(meta, handle, ensure_ascii=False, default=str)
        elif meta_path.exists():
            meta_path.unlink()
        count += 1
    return count
