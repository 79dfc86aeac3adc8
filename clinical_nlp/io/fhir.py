"""FHIR R4 input: DocumentReference notes from resources, Bundles and Bulk NDJSON.

Accepted inputs (:func:`read_fhir`):

* a ``.json`` file holding a DocumentReference, or a Bundle (``transaction``,
  ``collection``, ``searchset`` …) whose entries include DocumentReferences;
* a FHIR Bulk Data ``.ndjson`` file, one resource per line (non-DocumentReference
  lines are skipped);
* a directory of such files (sorted by name).

Each ``content[].attachment`` with a ``text/plain`` content type (or none; other
``text/*`` renditions only when there is no plain one) becomes the note text:
``data`` is base64-decoded as UTF-8 (or the ``charset`` of the content type);
plain ``url``-only attachments cannot be fetched (no network) and are an error.
Validation uses ``fhir.resources`` 6.5, whose default package is FHIR 4.3 (R4B);
DocumentReference is structurally the same as R4 there.

Synthea bundles repeat every note as ``DiagnosticReport.presentedForm``; those
are read only when no DocumentReference in the same input carries the same
text for the same patient (dedupe), so notes are not double-counted.

``Note.metadata`` gets ``patient`` (subject reference, ``urn:uuid:`` stripped),
``date``, ``note_type`` (first type display/code), ``type`` (all displays),
``encounter``, ``resource_type``, ``status``, ``source`` (file name) when present.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from clinical_nlp.errors import InputFormatError
from clinical_nlp.io._common import check_text, read_utf8
from clinical_nlp.types import AnnotatedNote, Note


def _strip_ref(ref: str | None) -> str | None:
    if not ref:
        return None
    for prefix in ("urn:uuid:", "Patient/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _charset(content_type: str | None) -> str:
    m = re.search(r"charset=([\w.-]+)", content_type or "", re.IGNORECASE)
    return m.group(1) if m else "utf-8"


def _attachment_text(att: Mapping[str, Any], *, where: str, source: str, line: int | None) -> str | None:
    ctype = att.get("contentType") or "text/plain"
    if not ctype.lower().startswith("text/"):
        return None
    if att.get("data") is not None:
        try:
            raw = base64.b64decode(att["data"], validate=True)
        except (binascii.Error, ValueError):
            raise InputFormatError(f"{where}: attachment data is not valid base64", source=source, line=line) from None
        try:
            return raw.decode(_charset(ctype))
        except (UnicodeDecodeError, LookupError) as exc:
            raise InputFormatError(
                f"{where}: attachment is not valid {_charset(ctype)} text ({exc})", source=source, line=line
            ) from None
    if att.get("url"):
        raise InputFormatError(
            f"{where}: attachment only has a url ({att['url']}); fetching is not supported, "
            "embed the text as base64 'data'",
            source=source,
            line=line,
        )
    return None


def _validate(resource: Mapping[str, Any], *, where: str, source: str, line: int | None) -> None:
    from fhir.resources import get_fhir_model_class

    try:
        get_fhir_model_class(resource["resourceType"]).parse_obj(resource)
    except Exception as exc:  # pydantic.ValidationError
        first = str(exc).splitlines()
        raise InputFormatError(
            f"{where}: invalid FHIR {resource['resourceType']}: {' '.join(first[:3])}", source=source, line=line
        ) from None


def _codings(concept: Mapping[str, Any] | None) -> list[str]:
    if not concept:
        return []
    out = [c.get("display") or c.get("code") for c in concept.get("coding", []) if c.get("display") or c.get("code")]
    if not out and concept.get("text"):
        out = [concept["text"]]
    return out


def resource_to_notes(
    resource: Mapping[str, Any],
    *,
    source: str,
    line: int | None = None,
    validate: bool = True,
    allow_empty: bool = False,
) -> list[Note]:
    """Notes of one DocumentReference or DiagnosticReport (``presentedForm``); others give none."""
    rtype = resource.get("resourceType")
    if rtype not in {"DocumentReference", "DiagnosticReport"}:
        return []
    rid = resource.get("id")
    where = f"{rtype}/{rid}" if rid else rtype
    if not rid:
        raise InputFormatError(f"{rtype} without an 'id'", source=source, line=line)
    if validate:
        _validate(resource, where=where, source=source, line=line)
    if rtype == "DocumentReference":
        attachments = [c.get("attachment") or {} for c in resource.get("content") or []]
        if not attachments:
            raise InputFormatError(f"{where}: no content attachment", source=source, line=line)
        types = _codings(resource.get("type"))
        date = resource.get("date") or (resource.get("context") or {}).get("period", {}).get("start")
        encs = (resource.get("context") or {}).get("encounter") or []
        encounter = encs[0].get("reference") if encs else None
    else:
        attachments = list(resource.get("presentedForm") or [])
        types = _codings(resource.get("code"))
        date = resource.get("effectiveDateTime") or resource.get("issued")
        encounter = (resource.get("encounter") or {}).get("reference")
    # several renditions of one note (text/plain and text/html): prefer the plain text ones
    plain = [a for a in attachments if (a.get("contentType") or "text/plain").lower().startswith("text/plain")]
    texts = [
        t
        for t in (_attachment_text(a, where=where, source=source, line=line) for a in (plain or attachments))
        if t is not None
    ]
    meta: dict[str, Any] = {"resource_type": rtype, "source": Path(source).name}
    patient = _strip_ref((resource.get("subject") or {}).get("reference"))
    for key, value in (
        ("patient", patient),
        ("date", date),
        ("note_type", types[0] if types else None),
        ("type", types or None),
        ("encounter", encounter),
        ("status", resource.get("status")),
    ):
        if value is not None:
            meta[key] = value
    notes = []
    for k, text in enumerate(texts):
        note_id = str(rid) if len(texts) == 1 else f"{rid}#{k}"
        check_text(note_id, text, source=source, line=line, allow_empty=allow_empty)
        notes.append(Note(note_id, text, meta))
    if not notes and rtype == "DocumentReference":
        raise InputFormatError(f"{where}: no text/* attachment with data", source=source, line=line)
    return notes


def _iter_resources(path: Path) -> Iterator[tuple[Mapping[str, Any], int | None]]:
    if path.suffix.lower() == ".ndjson":
        from clinical_nlp.io.jsonl import iter_json_rows

        for number, row in iter_json_rows(path):
            if "resourceType" not in row:
                raise InputFormatError("line has no 'resourceType'", source=str(path), line=number)
            yield row, number
        return
    text = read_utf8(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"invalid JSON: {exc.msg}", source=str(path), line=exc.lineno) from None
    if not isinstance(data, dict) or "resourceType" not in data:
        raise InputFormatError("not a FHIR resource (no 'resourceType')", source=str(path))
    if data["resourceType"] == "Bundle":
        for _k, entry in enumerate(data.get("entry") or []):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict):
                yield res, None
    else:
        yield data, None


def iter_fhir_notes(path: Path | str, *, validate: bool = True, allow_empty: bool = False) -> Iterator[Note]:
    """Stream the notes of a FHIR file or directory (DiagnosticReport duplicates removed)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in {".json", ".ndjson"})
        if not files:
            raise InputFormatError("no .json or .ndjson files found", source=str(path))
    elif path.exists():
        files = [path]
    else:
        raise InputFormatError("file not found", source=str(path))
    for file in files:
        seen_text: set[tuple[str | None, str]] = set()
        reports: list[Note] = []
        ids: set[str] = set()
        for resource, line in _iter_resources(file):
            for note in resource_to_notes(
                resource, source=str(file), line=line, validate=validate, allow_empty=allow_empty
            ):
                if note.metadata.get("resource_type") == "DiagnosticReport":
                    reports.append(note)
                    continue
                if note.id in ids:
                    raise InputFormatError(f"duplicate DocumentReference id {note.id!r}", source=str(file), line=line)
                ids.add(note.id)
                seen_text.add((note.patient, note.text))
                yield note
        for note in reports:
            if (note.patient, note.text) not in seen_text and note.id not in ids:
                seen_text.add((note.patient, note.text))
                ids.add(note.id)
                yield note


def read_fhir(path: Path | str, *, validate: bool = True, allow_empty: bool = False) -> list[AnnotatedNote]:
    """Read notes (without spans) from FHIR R4 JSON / Bundle / Bulk NDJSON (see module doc)."""
    docs = [AnnotatedNote(n) for n in iter_fhir_notes(path, validate=validate, allow_empty=allow_empty)]
    if not docs:
        raise InputFormatError("no DocumentReference notes found", source=str(path))
    return docs
