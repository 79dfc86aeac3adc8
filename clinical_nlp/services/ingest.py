"""Ingest: load a corpus's notes (and optionally its spans) into a project's store, audited."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import LabelSchema
from clinical_nlp.consensus.relations import relation_problems
from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.registry import detect_format, read_corpus
from clinical_nlp.services.validation import require_person, span_problems
from clinical_nlp.store import Store
from clinical_nlp.types import AnnotatedNote, Annotation


def ingest_corpus(
    input: Path | str,
    project: Any,
    *,
    fmt: str | None = None,
    deidentified: bool = False,
    annotator: str | None = None,
    kind: str = "gold",
    actor: str = "cli",
    allow_empty: bool = False,
    progress: bool = False,
    batch_size: int = 500,
    unknown_labels: str = "refuse",
) -> dict[str, int]:
    """Load a corpus's notes (and optionally its spans) into ``project``'s store.

    Returns ``{"notes": n, "annotations": m}``. Records an ``ingest`` audit entry.
    ``annotator`` stores each document's spans as an :class:`Annotation` of that
    annotator with ``kind`` (``gold``, ``human`` or ``pre``), after the validation gate: spans
    inside and matching the text, labels and attributes in the schema (``unknown_labels="drop"``
    drops spans of labels outside it instead of refusing), a registered annotator for ``human``.
    Nothing is stored when a check fails.
    """
    if kind not in {"gold", "human", "pre"}:
        raise InputFormatError(f"annotation kind must be gold, human or pre, not {kind!r}")
    if unknown_labels not in ("refuse", "drop"):
        raise InputFormatError(f"unknown_labels must be 'refuse' or 'drop', not {unknown_labels!r}")
    docs = read_corpus(input, fmt, allow_empty=allow_empty)
    if not docs:
        raise InputFormatError("no documents to ingest (empty input)", source=str(input))
    store = Store(project.store_url)
    guideline = project.guideline()
    dropped = dropped_links = 0
    if annotator:
        if kind == "human":
            require_person(store, annotator, action="ingest of human annotations", schema=guideline.schema)
        docs, dropped, dropped_links = _checked(docs, guideline.schema, unknown_labels, source=str(input))
    store.refuse_text_changes([d.note for d in docs])  # before the first batch: all or nothing
    n_notes = n_ann = 0
    rows: dict[str, str] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(docs), desc="ingest", unit="note")
    try:
        for i in range(0, len(docs), batch_size):
            batch = docs[i : i + batch_size]
            n_notes += store.add_notes(
                [d.note for d in batch],
                deidentified=deidentified,
                method=f"attested free of PHI at ingest by {actor} (--deidentified)",
                actor=actor,
                text_changes_checked=True,  # every note was checked before the first batch
            )
            if annotator:
                for d in batch:
                    rows |= store.save_annotation(
                        Annotation(
                            d.id,
                            annotator,
                            tuple(d.spans),
                            source="human" if kind == "human" else f"import:{Path(input).name}",
                            guideline_version=guideline.version,
                            relations=tuple(d.relations),  # an imported corpus's links are gold too
                        ),
                        kind=kind,
                    )
                    n_ann += 1
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    AuditLog(store).append(
        "ingest",
        actor=actor,
        details={
            "input": Path(input).name,
            "format": fmt or detect_format(input),
            "notes": n_notes,
            "annotations": n_ann,
            "dropped_unknown_label_spans": dropped,
            "dropped_links": dropped_links,
            "deidentified": deidentified,
        },
        rows=rows,
    )
    return {"notes": n_notes, "annotations": n_ann, "dropped_spans": dropped, "dropped_links": dropped_links}


def _checked(
    docs: list[AnnotatedNote], schema: LabelSchema, unknown_labels: str, *, source: str
) -> tuple[list[AnnotatedNote], int, int]:
    """Every document's spans through the validation gate (all problems named, before anything is written);
    with ``unknown_labels="drop"`` spans whose label is not in the schema are dropped (with the links that
    name them) and counted."""
    known = set(schema.label_names)
    out, dropped, dropped_links, problems = [], 0, 0, []
    for d in docs:
        if unknown_labels == "drop":  # their spans and the links that name them
            kept = d.keeping_labels(known)
            dropped += len(d.spans) - len(kept.spans)
            d = kept
        good, bad = span_problems(d.note, list(d.spans), schema)
        problems += [f"document {d.id!r}: {b}" for b in bad]
        links = list(d.relations)
        if unknown_labels == "drop":  # links of a type, or between labels, the schema does not allow
            links = [r for r in links if not relation_problems(good, [r], schema)]
            dropped_links += len(d.relations) - len(links)
        problems += [f"document {d.id!r}: {b}" for b in relation_problems(good, links, schema)]
        out.append(replace(d, spans=tuple(good), relations=tuple(links)))
    if problems:
        shown = "; ".join(problems[:10]) + (f" … (+{len(problems) - 10} more)" if len(problems) > 10 else "")
        raise InputFormatError(f"{len(problems)} invalid span(s), nothing ingested: {shown}", source=source)
    return out, dropped, dropped_links
