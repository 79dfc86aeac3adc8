"""Ingest: load a corpus's notes (and optionally its spans) into a project's store, audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinical_nlp.audit import AuditLog
from clinical_nlp.errors import InputFormatError
from clinical_nlp.io.registry import detect_format, read_corpus
from clinical_nlp.store import Store
from clinical_nlp.types import Annotation


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
) -> dict[str, int]:
    """Load a corpus's notes (and optionally its spans) into ``project``'s store.

    Returns ``{"notes": n, "annotations": m}``. Records an ``ingest`` audit entry.
    ``annotator`` stores each document's spans as an :class:`Annotation` of that
    annotator with ``kind`` (``gold``, ``human`` or ``pre``).
    """
    if kind not in {"gold", "human", "pre"}:
        raise InputFormatError(f"annotation kind must be gold, human or pre, not {kind!r}")
    docs = read_corpus(input, fmt, allow_empty=allow_empty)
    store = Store(project.store_url)
    guideline = project.guideline().version
    n_notes = n_ann = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(docs), desc="ingest", unit="note")
    try:
        for i in range(0, len(docs), batch_size):
            batch = docs[i : i + batch_size]
            n_notes += store.add_notes([d.note for d in batch], deidentified=deidentified)
            if annotator:
                for d in batch:
                    store.save_annotation(
                        Annotation(d.id, annotator, tuple(d.spans), source="human", guideline_version=guideline),
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
            "deidentified": deidentified,
        },
    )
    return {"notes": n_notes, "annotations": n_ann}
