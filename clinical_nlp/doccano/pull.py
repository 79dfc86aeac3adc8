"""Pull: each annotator's finished work read back from Doccano, through the validation gate.

One (note, annotator) with a problem (an attribute label without its entity, an unknown
label, a span off the text, a changed text) is recorded as a pull problem and not pulled;
every other row is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import select

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import Guideline
from clinical_nlp.doccano.client import AnnotatorSession, DoccanoServer
from clinical_nlp.doccano.codec import decode_triples
from clinical_nlp.doccano.credentials import DoccanoCredentials
from clinical_nlp.doccano.sync import _links
from clinical_nlp.edits import edit_summary
from clinical_nlp.errors import DoccanoError
from clinical_nlp.faults import crash_point
from clinical_nlp.io.jsonl import write_rows
from clinical_nlp.services.validation import span_problems
from clinical_nlp.store import PullProblemRow, Store, utcnow
from clinical_nlp.types import ATTRIBUTE_DEFAULTS, Annotation, Note, Span


def pull(
    store: Store,
    guideline: Guideline,
    project_name: str,
    *,
    annotators: Sequence[str] | None = None,
    creds: DoccanoCredentials | None = None,
    actor: str | None = None,
    threads: int = 4,
) -> list[dict[str, Any]]:
    """Fetch each annotator's labels on notes they marked done; store and return rows.

    One row per (note, annotator): ``id``, ``annotator``, ``text``, ``spans``
    (flat attribute keys), ``edits``, ``guideline_version``, ``model_version``,
    ``timestamp``. Each (note, annotator) passes the validation gate (text equal to the
    store's copy, offsets, labels and attributes of the schema, no attribute label left
    without its entity); one that fails is not pulled but recorded as a problem
    (:func:`pull_problems`, the ``doccano.pull`` audit entry) while every other row is pulled.
    """
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    proj = server.find_project(project_name)
    if proj is None:
        raise DoccanoError(f"Doccano project {project_name!r} does not exist at {creds.url}")
    pid = int(proj["id"])
    links = _links(store, project_name)
    by_example = {r.example_id: r for r in links.values()}
    on_server = server.examples_by_note(pid)
    stale = sorted(nid for nid, link in links.items() if on_server.get(nid) != link.example_id)
    if stale:
        raise DoccanoError(
            f"{len(stale)} of {len(links)} notes the store linked to Doccano project {project_name!r} are not on "
            f"{creds.url} as recorded (first: {stale[0]!r}): the server was reset or is another one; "
            "run 'doccano push' to reconcile before pulling"
        )
    if annotators is None:
        annotators = sorted({a for r in links.values() for a in (r.state or {}).get("assigned", [])})
    rows: list[dict[str, Any]] = []
    problems: list[tuple[str, str, str]] = []
    pulled: set[tuple[str, str]] = set()
    written: dict[str, str] = {}
    for annotator in annotators:
        session = AnnotatorSession(creds.url, annotator, creds.password(annotator), pid)
        session.label_ids()
        done = [ex for ex in session.examples(confirmed=True) if int(ex["id"]) in by_example]
        with ThreadPoolExecutor(max_workers=threads) as pool:  # reads only: safe to parallelise
            fetched = list(pool.map(lambda ex, _s=session: _s.triples(int(ex["id"])), done))
        for ex, triples in zip(done, fetched, strict=True):
            link = by_example[int(ex["id"])]
            note = store.get_note(link.note_id)
            try:
                spans = _checked_spans(note, ex, triples, guideline)
            except DoccanoError as exc:
                problems.append((link.note_id, annotator, str(exc)))
                continue
            pre = store.annotations(kind="pre", item=link.note_id, annotator=annotator)
            pre_spans = pre[0].spans if pre else ()
            model_version = pre[0].model_version if pre else None
            edits = edit_summary(pre_spans, spans)
            ann = Annotation(
                item=link.note_id,
                annotator=annotator,
                payload=spans,
                source="human",
                guideline_version=guideline.version,
                model_version=model_version,
                edits=edits,
            )
            written |= store.save_annotation(ann, kind="human")
            crash_point("pull.saved")
            pulled.add((link.note_id, annotator))
            rows.append(
                {
                    "id": link.note_id,
                    "annotator": annotator,
                    "text": note.text,
                    "spans": [
                        {
                            "start": s.start,
                            "end": s.end,
                            "label": s.label,
                            "text": s.text,
                            **{k: s.attributes.get(k, ATTRIBUTE_DEFAULTS[k]) for k in ATTRIBUTE_DEFAULTS},
                        }
                        for s in spans
                    ],
                    "edits": edits,
                    "guideline_version": guideline.version,
                    "model_version": model_version,
                    "timestamp": ann.timestamp,
                    "doccano_example_id": int(ex["id"]),
                }
            )
    _record_problems(store, project_name, problems, pulled)
    AuditLog(store).append(
        "doccano.pull",
        actor=actor or os.environ.get("CLINICAL_NLP_ACTOR") or creds.admin_user,
        details={
            "project": project_name,
            "url": creds.url,
            "rows": len(rows),
            "annotators": list(annotators),
            "problems": [{"note": n, "annotator": a, "problem": p} for n, a, p in problems],
        },
        rows=written,
    )
    return rows


def _checked_spans(note: Note, example: Mapping[str, Any], triples: Any, guideline: Guideline) -> tuple[Span, ...]:
    """One annotator's spans on one example, through the validation gate; DoccanoError names the problem."""
    if example.get("text") != note.text:
        raise DoccanoError(f"Doccano example {example['id']} text differs from the store's copy of the note")
    spans = decode_triples(note.text, triples)
    good, bad = span_problems(note, spans, guideline.schema)
    if bad:
        raise DoccanoError("; ".join(bad))
    return tuple(good)


def _record_problems(
    store: Store, project: str, problems: Sequence[tuple[str, str, str]], pulled: set[tuple[str, str]]
) -> None:
    """Open a problem per (note, annotator) that failed; resolve earlier ones that now pulled cleanly."""
    now = utcnow().isoformat(timespec="seconds")
    with store.session() as s:
        for row in s.scalars(
            select(PullProblemRow).where(PullProblemRow.project == project, PullProblemRow.status == "open")
        ):
            if (row.note_id, row.annotator) in pulled:
                row.status = "resolved"
        for note_id, annotator, problem in problems:
            s.add(PullProblemRow(project=project, note_id=note_id, annotator=annotator, problem=problem, found_at=now))


def pull_problems(store: Store, project_name: str) -> list[dict[str, Any]]:
    """Open problems of the latest pulls (note, annotator, problem): that work was not pulled."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    with store.session() as s:
        for r in s.scalars(
            select(PullProblemRow)
            .where(PullProblemRow.project == project_name, PullProblemRow.status == "open")
            .order_by(PullProblemRow.id)
        ):
            latest[(r.note_id, r.annotator)] = {
                "note": r.note_id,
                "annotator": r.annotator,
                "problem": r.problem,
                "found_at": r.found_at,
            }
    return list(latest.values())


def write_pull(rows: Sequence[Mapping[str, Any]], path: Path | str) -> int:
    """Write pull rows atomically (no partial file on error)."""
    return write_rows(path, rows)
