"""Push and status: each annotator's notes and pre-annotations bulk-imported into her own Doccano project.

The engine logs in only as its own Doccano user (see the package docstring): per annotator one
Doccano project (``<project>--<annotator>``, collaborative annotation on, she is the only
annotating member), into which the engine imports the texts *with* the pre-annotations in one
bulk upload. The engine never writes into an example after its import, so a re-run can never
overwrite an annotator's work; it only imports the notes still missing. An import task is
recorded before it is waited on, so a killed push waits for it on the re-run instead of
importing twice.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import Guideline
from clinical_nlp.consensus.relations import binary_relations
from clinical_nlp.doccano.client import DoccanoServer
from clinical_nlp.doccano.codec import encode_spans, encode_with_relations
from clinical_nlp.doccano.credentials import DoccanoCredentials
from clinical_nlp.doccano.links import (
    UPLOADING,
    annotator_project_name,
    close_imports,
    drop_links,
    example_links,
    open_imports,
    record_import,
    require_links,
    save_links,
    set_import_task,
)
from clinical_nlp.doccano.push_checks import check_phi_policy, check_qualified, dedupe_spans, validate_push_rows
from clinical_nlp.errors import DoccanoError, InputFormatError
from clinical_nlp.faults import crash_point
from clinical_nlp.io.jsonl import row_to_annotated
from clinical_nlp.io.note_rows import iter_note_rows
from clinical_nlp.store import Store
from clinical_nlp.types import AnnotatedNote, Annotation

PushRows = Sequence[tuple[AnnotatedNote, Mapping[str, Any]]]
#: seconds to wait for an import an earlier, killed push started (1,000 notes import in about 2 s)
EARLIER_IMPORT_WAIT = 60.0


@dataclass
class PushReport:
    project: str
    #: annotator → her Doccano project (name and id)
    doccano_projects: dict[str, str] = field(default_factory=dict)
    project_ids: dict[str, int] = field(default_factory=dict)
    notes: int = 0
    #: examples imported now (one per assigned (note, annotator))
    imported: int = 0
    #: examples an interrupted earlier push imported, linked now
    recovered: int = 0
    skipped_already_pushed: int = 0
    spans_created: int = 0
    relations_created: int = 0
    import_seconds: float = 0.0
    #: links of the store whose example the server no longer holds (reset or other server): re-imported
    stale_links: int = 0
    assignments: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


def assign(
    notes: Sequence[AnnotatedNote], annotators: Sequence[str], overlap: int, safety_critical: set[str]
) -> dict[str, list[str]]:
    """note id → annotators: ``overlap`` of them round robin; all if a safety-critical label occurs."""
    if not annotators:
        raise DoccanoError("no annotators given")
    k = max(1, min(overlap, len(annotators)))
    out: dict[str, list[str]] = {}
    n = 0  # consecutive blocks of k annotators, wrapping around: equal load
    for doc in notes:
        if any(s.label in safety_critical for s in doc.spans):
            out[doc.id] = list(annotators)
        else:
            out[doc.id] = [annotators[(n * k + j) % len(annotators)] for j in range(k)]
            n += 1
    return out


def read_preannotations(path: Path | str) -> list[tuple[AnnotatedNote, dict[str, Any]]]:
    """Rows of ``clinical-nlp preannotate`` output, spans verified against the text; a repeated id is an error."""
    out = []
    seen: dict[str, int] = {}
    for line, row in iter_note_rows(path):
        doc = row_to_annotated(row, source=str(path), line=line).verified()
        first = seen.setdefault(doc.id, line)
        if first != line:
            raise InputFormatError(f"duplicate id {doc.id!r} (first on line {first})", source=str(path), line=line)
        out.append((doc, row))
    if not out:
        raise InputFormatError("no notes in the file", source=str(path))
    return out


def push(
    store: Store,
    guideline: Guideline,
    project_name: str,
    rows: PushRows,
    annotators: Sequence[str],
    *,
    overlap: int = 2,
    creds: DoccanoCredentials | None = None,
    require_deid: bool = True,
    allow_phi: bool = False,
    actor: str | None = None,
    phi_access_check: Callable[[str], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PushReport:
    """Import each assigned annotator's notes with her pre-annotations into her own Doccano project.

    Idempotent and resumable: notes already linked are skipped, an import a killed run
    started is waited for and linked, never repeated. Raises :class:`PolicyError` for notes
    not de-identified (unless ``allow_phi`` with an ``actor`` that passes
    ``phi_access_check``; by default the actor must be registered with PHI access), and
    :class:`DoccanoError` naming annotators without a Doccano account.
    """
    t0 = time.perf_counter()
    annotators = [a.strip() for a in annotators if a.strip()]
    audit = AuditLog(store)
    actor = actor or os.environ.get("CLINICAL_NLP_ACTOR")
    validate_push_rows(rows, guideline.schema)
    # Doccano holds one span per (offsets, label): identical duplicates collapse there, so collapse
    # them here too, or an annotator who changes nothing would show a "deleted" edit on pull.
    rows = [(dedupe_spans(d), row) for d, row in rows]
    docs = {d.id: d for d, _ in rows}
    plan = assign(list(docs.values()), annotators, overlap, guideline.schema.safety_critical)
    check_phi_policy(
        store,
        audit,
        project_name,
        rows,
        plan,
        require_deid=require_deid,
        allow_phi=allow_phi,
        actor=actor,
        phi_access_check=phi_access_check,
    )
    check_qualified(store, annotators, guideline)
    names = {a: annotator_project_name(project_name, a) for a in annotators}
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    missing = server.missing_users(annotators)  # before anything is written
    if missing:
        raise DoccanoError(
            f"no Doccano account for {missing} at {creds.url}: each person creates their own "
            "(bash scripts/doccano.sh adduser NAME, or the Doccano admin page); clinical-nlp holds no passwords"
        )
    # local store first: it is the source of truth, written before the server is changed (an input
    # file's "deidentified" field is no record: only the store's de-identification records count)
    store.add_notes([d.note for d in docs.values()])
    report = PushReport(project=project_name, notes=len(docs), doccano_projects=dict(names))
    versions = {d.id: (row.get("model_version") or _model_version(d)) for d, row in rows}
    importer = _Importer(store, server, guideline, project_name, docs, versions, report, actor or creds.admin_user)
    started: dict[str, tuple[int, list[str], str | None]] = {}
    for a in annotators:
        report.assignments[a] = [nid for nid, who in plan.items() if a in who]
        pid = server.sync_project(names[a], guideline, {a: "annotator"})
        report.project_ids[a] = pid
        started[a] = (pid, *importer.start(a, pid, report.assignments[a]))
    # the server imports every annotator's file meanwhile; wait and list them in parallel, link in order
    t_wait = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
        listed = dict(zip(started, pool.map(lambda item: importer.wait(*item), started.values()), strict=True))
    report.import_seconds += time.perf_counter() - t_wait  # upload, server-side import, listing
    for a, (pid, to_link, task_id) in started.items():
        importer.finish(a, pid, to_link, task_id, listed[a])
        if progress:
            progress(len(to_link))
    report.seconds = time.perf_counter() - t0
    audit.append(
        "doccano.push",
        actor=actor or creds.admin_user,
        details={
            "project": project_name,
            "doccano_projects": names,
            "doccano_project_ids": report.project_ids,
            "url": creds.url,
            "notes": len(docs),
            "imported": report.imported,
            "recovered": report.recovered,
            "stale_links": report.stale_links,
            "spans_created": report.spans_created,
            "relations_created": report.relations_created,
            "annotators": annotators,
            "overlap": overlap,
            "guideline_version": guideline.version,
        },
    )
    return report


def await_earlier_import(server: DoccanoServer, pid: int, task_id: str, note_ids: Sequence[str]) -> None:
    """Wait for an import a killed run started. One killed before its task id was stored (an ``UPLOADING``
    marker) may still be importing: wait until its notes are listed. A task the server does not know
    (reset) stays pending forever in Doccano's task API. Either way, after ``EARLIER_IMPORT_WAIT``
    seconds it counts as lost and what is missing is imported again."""
    if task_id.startswith(UPLOADING):
        server.wait_for_notes(pid, note_ids, timeout=EARLIER_IMPORT_WAIT)
        return
    try:
        server.wait_import(pid, task_id, timeout=EARLIER_IMPORT_WAIT)
    except DoccanoError as exc:
        if "not finished" not in str(exc):
            raise


@dataclass
class _Importer:
    """One annotator's part of a push: reconcile with the server, start the import, link what it created."""

    store: Store
    server: DoccanoServer
    guideline: Guideline
    project: str
    docs: Mapping[str, AnnotatedNote]
    versions: Mapping[str, str | None]
    report: PushReport
    actor: str

    def start(self, annotator: str, pid: int, assigned: Sequence[str]) -> tuple[list[str], str | None]:
        """Notes to link once the import (task id, or None) has run; imports started earlier are awaited."""
        url = self.server.url
        earlier = open_imports(self.store, self.project, annotator, url, pid)
        on_server = self.server.examples_by_note(pid)
        for task_id, note_ids in earlier.items():  # a killed push started it: never import those notes twice
            if not all(nid in on_server for nid in note_ids):
                await_earlier_import(self.server, pid, task_id, note_ids)
        if earlier:
            close_imports(self.store, self.project, annotator, list(earlier))
            on_server = self.server.examples_by_note(pid)
        links = example_links(self.store, self.project, annotator)
        stale = [
            nid
            for (_, nid), ln in links.items()
            if (ln.server, ln.doccano_project_id) != (url, pid) or on_server.get(nid) != ln.example_id
        ]
        if stale:  # the server was reset, or this is another one: what the store says is not there
            drop_links(self.store, self.project, annotator, stale)
            self.report.stale_links += len(stale)
        linked = {nid for (_, nid) in links} - set(stale)
        self.report.skipped_already_pushed += sum(1 for nid in assigned if nid in linked)
        to_link = [nid for nid in assigned if nid not in linked]
        recovered = [nid for nid in to_link if nid in on_server]
        if recovered:  # imported by a killed run, never linked: link them as they are (they may be edited)
            self._link(annotator, pid, recovered, on_server)
            self.report.recovered += len(recovered)
        to_import = [nid for nid in to_link if nid not in on_server]
        if not to_import:
            return [], None
        rel_links: dict[str, list[dict[str, Any]]] | None = None
        if self.guideline.schema.relations:  # a project with relations on: Doccano's relation-import rows
            encoded = {nid: encode_with_relations(self.docs[nid].spans, self.docs[nid].relations) for nid in to_import}
            payload = [(nid, self.docs[nid].text, encoded[nid][0]) for nid in to_import]
            rel_links = {nid: encoded[nid][1] for nid in to_import}
        else:
            payload = [(nid, self.docs[nid].text, encode_spans(self.docs[nid].spans)) for nid in to_import]
        t = time.perf_counter()
        # recorded before the upload: a push killed after the server accepted it, before its task id
        # was stored, finds the marker and waits for the notes instead of importing them twice
        marker = f"{UPLOADING}{uuid.uuid4().hex}"
        record_import(self.store, self.project, annotator, url, pid, marker, to_import)
        task_id = self.server.start_import(pid, payload, relations=rel_links)
        crash_point("push.upload_accepted")
        set_import_task(self.store, self.project, annotator, marker, task_id)
        crash_point("push.import_started")
        self.report.import_seconds += time.perf_counter() - t
        self.report.imported += len(to_import)
        self.report.spans_created += sum(len(p[2]) for p in payload)
        self.report.relations_created += sum(len(v) for v in (rel_links or {}).values())
        return to_import, task_id

    def wait(self, pid: int, to_link: Sequence[str], task_id: str | None) -> dict[str, int]:
        """Wait for this run's import (if any); the project's examples by note id afterwards."""
        if task_id is None:
            return {}
        self.server.wait_import(pid, task_id)
        return self.server.examples_by_note(pid)

    def finish(
        self, annotator: str, pid: int, to_link: Sequence[str], task_id: str | None, on_server: Mapping[str, int]
    ) -> None:
        if task_id is None:
            return
        crash_point("push.imported")
        lost = [nid for nid in to_link if nid not in on_server]
        if lost:
            raise DoccanoError(
                f"{len(lost)} note(s) imported into Doccano project {pid} are not listed there (first: {lost[0]!r})"
            )
        self._link(annotator, pid, to_link, on_server)
        close_imports(self.store, self.project, annotator, [task_id])

    def _link(self, annotator: str, pid: int, note_ids: Sequence[str], on_server: Mapping[str, int]) -> None:
        """The pre-annotation rows first, then the links (a crash in between re-links on the re-run)."""
        written = self.store.save_annotations(
            [
                Annotation(
                    item=nid,
                    annotator=annotator,
                    payload=tuple(self.docs[nid].spans),
                    source=f"model:{self.versions[nid]}",
                    guideline_version=self.guideline.version,
                    model_version=self.versions[nid],
                    relations=tuple(
                        {"type": k, "arg1": a, "arg2": b} for k, a, b in binary_relations(self.docs[nid].relations)
                    ),
                )
                for nid in note_ids
            ],
            kind="pre",
        )
        AuditLog(self.store).append(
            "doccano.push",
            actor=self.actor,
            details={
                "project": self.project,
                "step": "pre-annotations imported",
                "annotator": annotator,
                "notes": len(note_ids),
            },
            rows=written,
        )
        crash_point("push.pre_saved")
        save_links(self.store, self.project, annotator, self.server.url, pid, [(n, on_server[n]) for n in note_ids])
        crash_point("push.linked")


def _model_version(doc: AnnotatedNote) -> str | None:
    sources = sorted({s.source for s in doc.spans if s.source})
    return ",".join(sources) or None


def status(
    store: Store, project_name: str, *, creds: DoccanoCredentials | None = None, activity: bool = False
) -> dict[str, Any]:
    """Progress per annotator, from her Doccano project: assigned, pre-annotations in place, done and (with
    ``activity``; two reads per example) ``last_activity``, the latest span she made or changed or example
    she marked done (a deletion leaves no time in Doccano)."""
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    links = require_links(store, project_name)
    per: dict[str, dict[str, Any]] = {}
    for (a, _), ln in sorted(links.items()):
        d = per.setdefault(a, {"assigned": 0, "pre_in_place": 0, "done": 0, "doccano_project_id": 0})
        d["doccano_project_id"] = ln.doccano_project_id
        d["assigned"] += 1
        d["pre_in_place"] += 1  # imported together with its text: in place by construction
    for a, d in per.items():
        name = annotator_project_name(project_name, a)
        found = server.find_project(name)
        if found is None or int(found["id"]) != d["doccano_project_id"]:
            raise DoccanoError(
                f"Doccano project {name!r} (id {d['doccano_project_id']}) is not at {creds.url} as recorded: "
                "the server was reset or is another one; run 'doccano push' to reconcile"
            )
        d["doccano_project"] = name
        d["link"] = f"{creds.url}/projects/{d['doccano_project_id']}"
        for m in server.progress(d["doccano_project_id"]):
            if m.get("user") == a:
                d["done"] = int(m.get("done", 0))
        if activity:
            examples = [ln.example_id for (who, _), ln in links.items() if who == a]
            d["last_activity"] = server.last_activity(d["doccano_project_id"], server.user_id(a), examples)
    return {"project": project_name, "notes": len({nid for _, nid in links}), "annotators": per}
