"""Push and pull orchestration (see the package docstring for the design)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from clinical_nlp.audit import AuditLog
from clinical_nlp.config import Guideline, LabelSchema
from clinical_nlp.doccano.client import AnnotatorSession, DoccanoServer
from clinical_nlp.doccano.codec import encode_spans
from clinical_nlp.doccano.credentials import DoccanoCredentials
from clinical_nlp.errors import DoccanoError, InputFormatError, PolicyError
from clinical_nlp.faults import crash_point
from clinical_nlp.io.jsonl import iter_json_rows, row_to_annotated
from clinical_nlp.store import DoccanoLinkRow, Store
from clinical_nlp.types import ATTRIBUTE_VALUES, AnnotatedNote, Annotation

PushRows = Sequence[tuple[AnnotatedNote, Mapping[str, Any]]]
FLUSH_EVERY = 100


@dataclass
class PushReport:
    project: str
    project_id: int
    notes: int = 0
    imported: int = 0
    skipped_already_pushed: int = 0
    spans_created: int = 0
    import_seconds: float = 0.0
    #: links of the store whose example the server no longer holds (reset or other server): re-imported
    stale_links: int = 0
    #: (note, annotator) pairs an interrupted push left partial that the annotator edited since: not changed
    touched_left_alone: int = 0
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


def _links(store: Store, project: str) -> dict[str, DoccanoLinkRow]:
    with store.session() as s:
        return {r.note_id: r for r in s.scalars(select(DoccanoLinkRow).where(DoccanoLinkRow.project == project))}


def _drop_links(store: Store, project: str, note_ids: Sequence[str]) -> None:
    """Forget links whose example is not on the server any more (their notes are imported again)."""
    with store.session() as s:
        for row in s.scalars(
            select(DoccanoLinkRow).where(DoccanoLinkRow.project == project, DoccanoLinkRow.note_id.in_(list(note_ids)))
        ):
            s.delete(row)


def _save_link(store: Store, project: str, note_id: str, example_id: int, state: dict[str, Any]) -> None:
    with store.session() as s:
        row = s.scalars(
            select(DoccanoLinkRow).where(DoccanoLinkRow.project == project, DoccanoLinkRow.note_id == note_id)
        ).first()
        if row is None:
            s.add(DoccanoLinkRow(project=project, note_id=note_id, example_id=example_id, state=state))
        else:
            row.example_id, row.state = example_id, dict(state)


def read_preannotations(path: Path | str) -> list[tuple[AnnotatedNote, dict[str, Any]]]:
    """Rows of ``clinical-nlp preannotate`` output, spans verified against the text; a repeated id is an error."""
    out = []
    seen: dict[str, int] = {}
    for line, row in iter_json_rows(path):
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
    threads_per_annotator: int = 4,
    progress: Callable[[int], None] | None = None,
) -> PushReport:
    """Send notes with each assigned annotator's own pre-annotations to Doccano.

    Idempotent and resumable: notes already linked are not re-imported and
    annotators whose pre-annotations are recorded as in place are skipped.
    Raises :class:`PolicyError` for notes not de-identified (unless
    ``allow_phi`` with an ``actor`` that passes ``phi_access_check``; by default
    the actor must be registered with PHI access in the annotator registry).
    """
    t0 = time.perf_counter()
    annotators = [a.strip() for a in annotators if a.strip()]
    audit = AuditLog(store)
    actor = actor or os.environ.get("CLINICAL_NLP_ACTOR")
    _check_phi_policy(
        store,
        audit,
        project_name,
        rows,
        require_deid=require_deid,
        allow_phi=allow_phi,
        actor=actor,
        phi_access_check=phi_access_check,
    )
    _validate_labels(rows, guideline.schema)
    # Doccano holds one span per (offsets, label): identical duplicates collapse there, so collapse
    # them here too, or an annotator who changes nothing would show a "deleted" edit on pull.
    rows = [(_dedupe_spans(d), row) for d, row in rows]
    creds = creds or DoccanoCredentials.from_env()
    for a in annotators:
        creds.password(a)  # fail before touching the server
    # local store first: it is the source of truth, written before the server is contacted
    deid_ids = {d.id for d, row in rows if row.get("deidentified") is True}
    store.add_notes([d.note for d, _ in rows if d.id in deid_ids], deidentified=True)
    store.add_notes([d.note for d, _ in rows if d.id not in deid_ids])
    server = DoccanoServer(creds)
    pid = server.sync_project(project_name, guideline, {a: "annotator" for a in annotators})
    docs = [d for d, _ in rows]
    plan = assign(docs, annotators, overlap, guideline.schema.safety_critical)
    report = PushReport(project=project_name, project_id=pid, notes=len(docs))
    for a in annotators:
        report.assignments[a] = [nid for nid, who in plan.items() if a in who]
    links, fresh = _import_missing(store, server, project_name, pid, docs, plan, report)
    sessions = {a: AnnotatorSession(creds.url, a, creds.password(a), pid) for a in annotators}
    placer = _PreannotationPlacer(
        store=store,
        guideline=guideline,
        project_name=project_name,
        plan=plan,
        links=links,
        docs={d.id: d for d in docs},
        fresh=fresh,
        sessions=sessions,
        progress=progress,
        model_versions={d.id: (row.get("model_version") or _model_version(d)) for d, row in rows},
        actor=actor or creds.admin_user,
    )
    jobs = placer.jobs(annotators, report)
    order = {d.id: i for i, d in enumerate(docs)}
    jobs.sort(key=lambda j: (order[j[1]], j[0]))  # interleave annotators so both advance together
    report.spans_created += placer.run(jobs, max(1, threads_per_annotator * len(annotators)))
    report.touched_left_alone = placer.touched
    report.seconds = time.perf_counter() - t0
    audit.append(
        "doccano.push",
        actor=actor or creds.admin_user,
        details={
            "project": project_name,
            "doccano_project_id": pid,
            "url": creds.url,
            "notes": len(docs),
            "imported": report.imported,
            "stale_links": report.stale_links,
            "touched_left_alone": report.touched_left_alone,
            "spans_created": report.spans_created,
            "annotators": annotators,
            "overlap": overlap,
            "guideline_version": guideline.version,
        },
    )
    return report


def _check_phi_policy(
    store: Store,
    audit: AuditLog,
    project_name: str,
    rows: PushRows,
    *,
    require_deid: bool,
    allow_phi: bool,
    actor: str | None,
    phi_access_check: Callable[[str], bool] | None,
) -> None:
    """Refuse notes not de-identified unless an actor with PHI access overrides (audited)."""
    phi = [
        d.id for d, row in rows if require_deid and not (row.get("deidentified") is True or store.is_deidentified(d.id))
    ]
    if not phi:
        return
    if not allow_phi:
        raise PolicyError(
            f"{len(phi)} note(s) are not marked de-identified (first: {phi[:3]}); de-identify them, "
            "or pass --allow-phi with --actor (a user with PHI access)"
        )
    if not actor:
        raise PolicyError("--allow-phi needs an actor name (--actor or CLINICAL_NLP_ACTOR)")
    if phi_access_check is None:  # default: the annotator registry's phi_access flag
        from clinical_nlp.annotators import has_phi_access

        def phi_access_check(who: str) -> bool:
            return has_phi_access(store, who)

    if not phi_access_check(actor):
        raise PolicyError(f"actor {actor!r} has no PHI access; refusing to push {len(phi)} identifiable note(s)")
    audit.append("override", actor=actor, details={"rule": "require_deid", "project": project_name, "notes": phi})


def _import_missing(
    store: Store,
    server: DoccanoServer,
    project_name: str,
    pid: int,
    docs: Sequence[AnnotatedNote],
    plan: Mapping[str, list[str]],
    report: PushReport,
) -> tuple[dict[str, DoccanoLinkRow], set[str]]:
    """Bulk-import the texts of notes not linked yet; returns the links and the notes imported now.

    Texts only, by the admin (doccano 1.8.4 answers 403 to an annotator's import). An import
    interrupted before linking is recovered by matching ``meta.note_id`` on the server.
    """
    links = _links(store, project_name)
    on_server = server.examples_by_note(pid)
    stale = [nid for nid, link in links.items() if on_server.get(nid) != link.example_id]
    if stale:  # the server was reset, or this is another server: what the store says is not there
        _drop_links(store, project_name, stale)
        report.stale_links = len(stale)
        links = _links(store, project_name)
    missing = [d for d in docs if d.id not in links]
    if not missing:
        return links, set()
    to_import = [d for d in missing if d.id not in on_server]
    t_import = time.perf_counter()
    server.import_texts(pid, [(d.id, d.text, ()) for d in to_import])
    crash_point("push.imported")
    report.import_seconds = time.perf_counter() - t_import
    report.imported = len(to_import)
    if to_import:
        on_server = server.examples_by_note(pid)
    for d in missing:
        if d.id not in on_server:
            raise DoccanoError(f"note {d.id!r} was imported into Doccano project {project_name!r} but is not listed")
        _save_link(store, project_name, d.id, on_server[d.id], {"assigned": plan[d.id], "pre": {}})
    crash_point("push.linked")
    return _links(store, project_name), {d.id for d in to_import}


@dataclass
class _PreannotationPlacer:
    """Creates each (annotator, note)'s spans over HTTP in threads; records them in the store here."""

    store: Store
    guideline: Guideline
    project_name: str
    plan: Mapping[str, list[str]]
    links: Mapping[str, DoccanoLinkRow]
    docs: Mapping[str, AnnotatedNote]
    fresh: set[str]  # examples created by this run: nobody's spans on them yet
    sessions: Mapping[str, AnnotatorSession]
    model_versions: Mapping[str, str | None]
    actor: str
    progress: Callable[[int], None] | None = None
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    touched: int = 0

    def jobs(self, annotators: Sequence[str], report: PushReport) -> list[tuple[str, str]]:
        """(annotator, note) pairs whose pre-annotations are not recorded as in place."""
        self.states = {nid: dict(r.state or {}) for nid, r in self.links.items()}
        jobs: list[tuple[str, str]] = []
        for a in annotators:
            self.sessions[a].label_ids()
            for nid in report.assignments[a]:
                if not self.states[nid].get("pre", {}).get(a):
                    jobs.append((a, nid))
                elif nid not in self.fresh:
                    report.skipped_already_pushed += 1
        return jobs

    def place(self, job: tuple[str, str]) -> tuple[str, str, int]:
        """Create the spans still missing; ``-1`` spans: the annotator has touched the example (left alone).

        Never deletes. On an example imported by an earlier (interrupted) run the spans are created
        in a fixed order, so an untouched example holds a prefix of that list: the rest is added. An
        example marked done, or holding anything but such a prefix, has been edited by its annotator.
        """
        annotator, nid = job
        session = self.sessions[annotator]
        eid = self.links[nid].example_id
        wanted = encode_spans(self.docs[nid].spans)
        if nid not in self.fresh:
            names = session.label_names()
            current = sorted(session.spans(eid), key=lambda sp: int(sp["id"]))
            have = [(sp["start_offset"], sp["end_offset"], names.get(sp["label"])) for sp in current]
            if have != wanted[: len(have)] or session.is_done(eid):
                return annotator, nid, -1
            wanted = wanted[len(have) :]
        for start, end, label in wanted:
            session.add_span(eid, start, end, label)
            crash_point("push.span")
        crash_point("push.placed")
        return annotator, nid, len(wanted)

    def flush(self, batch: Sequence[tuple[str, str, int]]) -> None:
        """The pre-annotation records first, then the "in place" flags (a crash in between only redoes work)."""
        written: dict[str, str] = {}
        for annotator, nid, _ in batch:
            version = self.model_versions[nid]
            written |= self.store.save_annotation(
                Annotation(
                    item=nid,
                    annotator=annotator,
                    payload=tuple(self.docs[nid].spans),
                    source=f"model:{version}",
                    guideline_version=self.guideline.version,
                    model_version=version,
                ),
                kind="pre",
            )
        AuditLog(self.store).append(
            "doccano.push",
            actor=self.actor,
            details={"project": self.project_name, "step": "pre-annotations placed", "pairs": len(batch)},
            rows=written,
        )
        with self.store.session() as s:
            rows_by_note = {
                r.note_id: r
                for r in s.scalars(
                    select(DoccanoLinkRow).where(
                        DoccanoLinkRow.project == self.project_name,
                        DoccanoLinkRow.note_id.in_([nid for _, nid, _ in batch]),
                    )
                )
            }
            for annotator, nid, n in batch:
                st = self.states[nid]
                st.setdefault("assigned", self.plan[nid])
                st["pre"] = {**st.get("pre", {}), annotator: True}
                if n < 0:
                    st["touched"] = sorted({*st.get("touched", []), annotator})
                rows_by_note[nid].state = dict(st)
        crash_point("push.flushed")
        if self.progress:
            self.progress(len(batch))

    def run(self, jobs: Sequence[tuple[str, str]], threads: int) -> int:
        """Place every job (HTTP in threads, store writes in this thread); returns spans created."""
        created = 0
        batch: list[tuple[str, str, int]] = []
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for result in pool.map(self.place, jobs):
                if result[2] < 0:
                    self.touched += 1
                created += max(0, result[2])
                batch.append(result)
                if len(batch) >= FLUSH_EVERY:
                    self.flush(batch)
                    batch = []
        if batch:
            self.flush(batch)
        return created


def _dedupe_spans(doc: AnnotatedNote) -> AnnotatedNote:
    """Drop spans identical to an earlier one in offsets, label and attributes."""
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for sp in doc.spans:
        key = (sp.start, sp.end, sp.label, tuple(sorted(sp.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(sp)
    return doc if len(kept) == len(doc.spans) else replace(doc, spans=tuple(kept))


def _validate_labels(rows: PushRows, schema: LabelSchema) -> None:
    """Note ids are unique; every span label and attribute value exists in the schema (they become Doccano labels)."""
    names = set(schema.label_names)
    seen: set[str] = set()
    for doc, _ in rows:
        if doc.id in seen:
            raise InputFormatError(f"note {doc.id!r} appears twice in the push; note ids must be unique")
        seen.add(doc.id)
        for sp in doc.spans:
            if sp.fragments is not None:
                raise InputFormatError(
                    f"note {doc.id!r}: discontinuous span {sp.label!r} {list(sp.fragments)} "
                    "cannot be shown in Doccano 1.8.4 (contiguous spans only)"
                )
            if sp.label not in names:
                raise InputFormatError(
                    f"note {doc.id!r}: span [{sp.start}, {sp.end}) has label {sp.label!r} "
                    f"not in the label schema {sorted(names)}"
                )
            for attr, value in sp.attributes.items():
                allowed = schema.attributes[attr].values if attr in schema.attributes else ATTRIBUTE_VALUES.get(attr)
                if allowed is not None and value not in allowed:
                    raise InputFormatError(
                        f"note {doc.id!r}: span {sp.label!r} [{sp.start}, {sp.end}) has "
                        f"{attr}={value!r}, allowed: {list(allowed)}"
                    )


def _model_version(doc: AnnotatedNote) -> str | None:
    sources = sorted({s.source for s in doc.spans if s.source})
    return ",".join(sources) or None


def status(store: Store, project_name: str, *, creds: DoccanoCredentials | None = None) -> dict[str, Any]:
    """Progress per annotator: assigned, pre-annotations in place, done (from Doccano)."""
    creds = creds or DoccanoCredentials.from_env()
    server = DoccanoServer(creds)
    proj = server.find_project(project_name)
    if proj is None:
        raise DoccanoError(f"Doccano project {project_name!r} does not exist at {creds.url}")
    links = _links(store, project_name)
    per: dict[str, dict[str, int]] = {}
    for r in links.values():
        st = r.state or {}
        for a in st.get("assigned", []):
            d = per.setdefault(a, {"assigned": 0, "pre_in_place": 0, "done": 0})
            d["assigned"] += 1
            d["pre_in_place"] += 1 if st.get("pre", {}).get(a) else 0
    for m in server.progress(int(proj["id"])):
        name = m.get("user")
        if name in per:
            per[name]["done"] = int(m.get("done", 0))
    return {"project": project_name, "doccano_project_id": int(proj["id"]), "notes": len(links), "annotators": per}
