"""Pull: each annotator's finished work read back from her Doccano project, through the validation gate.

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
from clinical_nlp.consensus.relations import relation_problems
from clinical_nlp.doccano.client import DoccanoServer
from clinical_nlp.doccano.codec import decode_export_row
from clinical_nlp.doccano.credentials import DoccanoCredentials
from clinical_nlp.doccano.links import ExampleLink, annotator_project_name, require_links
from clinical_nlp.edits import full_edit_summary
from clinical_nlp.errors import DoccanoError
from clinical_nlp.faults import crash_point
from clinical_nlp.io.jsonl import write_rows
from clinical_nlp.services.validation import span_problems, trim_white_space
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
    """Read each annotator's finished examples from her Doccano project; store and return rows.

    The engine reads as itself, through Doccano's dataset export of the examples marked done
    (collaborative projects: every span on the example, whoever made it). An example counts
    as finished when its annotator marked it done; the time she did is the annotation's
    timestamp. One row per (note, annotator): ``id``, ``annotator``, ``text``, ``spans``
    (flat attribute keys), ``edits``, ``guideline_version``, ``model_version``,
    ``timestamp``, ``pulled_at``; ``guideline_version`` is the one the note was pushed under
    (its pre-annotation's), so a guideline changed since shows as drift. Each (note, annotator)
    passes the validation gate (text equal to the store's copy, offsets, labels and attributes
    of the schema, no attribute label left without its entity); one that fails is not pulled but recorded as a problem
    (:func:`pull_problems`, the ``doccano.pull`` audit entry) while every other row is pulled.
    """
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    links = require_links(store, project_name)
    if annotators is None:
        annotators = sorted({a for a, _ in links})
    rows: list[dict[str, Any]] = []
    problems: list[tuple[str, str, str]] = []
    older: list[str] = []
    pulled: set[tuple[str, str]] = set()
    written: dict[str, str] = {}
    pulled_at = utcnow().isoformat(timespec="seconds")
    for annotator in annotators:
        mine = {ln.example_id: ln for (a, _), ln in links.items() if a == annotator}
        if not mine:
            continue
        pid = _checked_project(server, project_name, annotator, mine)
        uid = server.user_id(annotator)
        exported = server.export_confirmed(pid)
        mismatched = _stale_in_export(exported, mine)
        if mismatched:
            raise _stale_error(annotator_project_name(project_name, annotator), server.url, len(mismatched), len(mine))
        done = [ex for ex in exported if int(ex["id"]) in mine]
        with ThreadPoolExecutor(max_workers=threads) as pool:  # reads only: safe to parallelise
            states = list(pool.map(lambda ex, _p=pid: server.example_states(_p, int(ex["id"])), done))
        batch: list[Annotation] = []
        # one query each for the notes and her pre-annotations, not two per example
        notes = {n.id: n for n in store.notes([mine[int(ex["id"])].note_id for ex in done])}
        pres = {a.item: a for a in store.annotations(kind="pre", annotator=annotator) if a.item in notes}
        for ex, ex_states in zip(done, states, strict=True):
            link = mine[int(ex["id"])]
            note = notes.get(link.note_id)
            confirmed_at = [str(st["confirmed_at"]) for st in ex_states if int(st.get("confirmed_by", -1)) == uid]
            try:
                if note is None:
                    raise DoccanoError(f"note {link.note_id!r} of example {ex['id']} is not in the store")
                if not confirmed_at:
                    raise DoccanoError(f"example {ex['id']} was marked done by someone other than {annotator!r}")
                spans, relations = checked_example(note, ex, guideline)
            except DoccanoError as exc:
                problems.append((link.note_id, annotator, str(exc)))
                continue
            pre = pres.get(link.note_id)
            pre_spans = pre.spans if pre else ()
            model_version = pre.model_version if pre else None
            # the guideline the note was pushed under, not the one in force now: a guideline
            # changed since stays visible as drift (`qa drift`) instead of being stamped away
            version = (pre.guideline_version if pre else None) or guideline.version
            if version != guideline.version:
                older.append(link.note_id)
            edits = full_edit_summary(
                pre_spans,
                pre.relations if pre else (),
                spans,
                relations,
                guideline.schema.undirected_relations,
            )
            ann = Annotation(
                item=link.note_id,
                annotator=annotator,
                payload=spans,
                source="human",
                guideline_version=version,
                model_version=model_version,
                edits=edits,
                timestamp=min(confirmed_at),
                relations=tuple(relations),
            )
            batch.append(ann)
            pulled.add((link.note_id, annotator))
            rows.append(
                {
                    "id": link.note_id,
                    "annotator": annotator,
                    "text": note.text,
                    "spans": [
                        {
                            "id": s.id,
                            "start": s.start,
                            "end": s.end,
                            "label": s.label,
                            "text": s.text,
                            **{
                                k: s.attributes.get(k, ATTRIBUTE_DEFAULTS[k])
                                for k in ATTRIBUTE_DEFAULTS
                                if k in guideline.schema.label(s.label).attributes
                            },
                        }
                        for s in spans
                    ],
                    "relations": relations,
                    "edits": edits,
                    "guideline_version": version,
                    "model_version": model_version,
                    "timestamp": ann.timestamp,
                    "pulled_at": pulled_at,
                    "doccano_project_id": pid,
                    "doccano_example_id": int(ex["id"]),
                }
            )
        written |= store.save_annotations(batch, kind="human")  # one transaction per annotator
        crash_point("pull.saved")
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
            "guideline_version": guideline.version,
            "pushed_under_another_guideline": len(older),
        },
        rows=written,
    )
    return rows


def _checked_project(server: DoccanoServer, project: str, annotator: str, mine: Mapping[int, ExampleLink]) -> int:
    """The annotator's Doccano project id, after checking the server holds the linked examples as recorded.

    Fast path: the project is the recorded one and holds as many examples as the store links
    (the examples pulled are then matched one by one, :func:`_stale_in_export`); otherwise every
    example is listed and compared.
    """
    name = annotator_project_name(project, annotator)
    found = server.find_project(name)
    pids = {ln.doccano_project_id for ln in mine.values()}
    servers = {ln.server for ln in mine.values()}
    same = found is not None and pids == {int(found["id"])} and servers == {server.url}
    if same and found is not None and server.example_count(int(found["id"])) == len(mine):
        return int(found["id"])
    on_server = server.examples_by_note(int(found["id"])) if same and found is not None else {}
    stale = sorted(ln.note_id for ln in mine.values() if on_server.get(ln.note_id) != ln.example_id)
    if not same or found is None or stale:
        raise _stale_error(name, server.url, len(stale) or len(mine), len(mine))
    return int(found["id"])


def _stale_in_export(exported: Sequence[Mapping[str, Any]], mine: Mapping[int, ExampleLink]) -> list[str]:
    """Note ids of exported examples whose id the store links to another note (another server's project)."""
    return sorted(
        mine[int(ex["id"])].note_id
        for ex in exported
        if int(ex["id"]) in mine and str(ex.get("note_id")) != mine[int(ex["id"])].note_id
    )


def _stale_error(name: str, url: str, stale: int, total: int) -> DoccanoError:
    return DoccanoError(
        f"{stale} of {total} notes the store linked to Doccano project {name!r} are not "
        f"on {url} as recorded: the server was reset or is another one; "
        "run 'doccano push' to reconcile before pulling"
    )


def checked_example(
    note: Note, example: Mapping[str, Any], guideline: Guideline
) -> tuple[tuple[Span, ...], list[dict[str, str]]]:
    """One annotator's spans (ids ``T1`` …) and relations on one exported example, through the validation
    gate: text, offsets, labels, attributes, relation types and the labels they may link; DoccanoError names
    every problem."""
    if example.get("text") != note.text:
        raise DoccanoError(f"Doccano example {example['id']} text differs from the store's copy of the note")
    spans, relations = decode_export_row(note.text, example)
    good, bad = span_problems(note, trim_white_space(note.text, spans), guideline.schema)
    bad += relation_problems(good, relations, guideline.schema)
    if bad:
        raise DoccanoError("; ".join(bad))
    unique = list({(r["type"], r["arg1"], r["arg2"]): r for r in relations}.values())
    return tuple(good), unique


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
