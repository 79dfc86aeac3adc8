"""An expert's task project in Doccano (adjudication, QA review): import notes with suggestions, read back
what she marked done. Shared by :mod:`clinical_nlp.doccano.adjudication` and
:mod:`clinical_nlp.doccano.qa_review`.

The project ``<doccano.project>--<task>--<person>`` is collaborative and she is its only annotating
member. Imports are resumable as the annotators' push (the import is recorded before the upload,
its task id as soon as the server answers; links name server and project); reading takes the
examples marked done by *her*, through the validation gate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clinical_nlp.config import Guideline
from clinical_nlp.doccano.client import DoccanoServer
from clinical_nlp.doccano.codec import encode_spans, encode_with_relations
from clinical_nlp.doccano.links import (
    UPLOADING,
    annotator_project_name,
    close_imports,
    drop_links,
    example_links,
    open_imports,
    record_import,
    save_links,
    set_import_task,
)
from clinical_nlp.doccano.pull import checked_example
from clinical_nlp.doccano.sync import await_earlier_import
from clinical_nlp.errors import DoccanoError, PolicyError
from clinical_nlp.faults import crash_point
from clinical_nlp.store import Store
from clinical_nlp.types import Note, Span


@dataclass(frozen=True)
class TaskProject:
    """Where one person's task lives: the Doccano project name and the store's link namespace."""

    project: str
    task: str
    person: str

    @property
    def name(self) -> str:
        return annotator_project_name(f"{self.project}--{self.task}", self.person)

    @property
    def key(self) -> str:
        return f"{self.project}#{self.task}"


@dataclass
class TaskPush:
    """What a push into a task project did (the adjudication and QA reports extend it)."""

    doccano_project: str
    project_id: int
    imported: int = 0
    skipped_already_pushed: int = 0
    link: str = ""


@dataclass
class TaskPull:
    """What a pull from a task project found (the adjudication and QA reports extend it)."""

    doccano_project: str
    unchanged: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    still_open: int = 0


@dataclass(frozen=True)
class TaskItem:
    note_id: str
    spans: tuple[Span, ...]
    meta: Mapping[str, Any]
    #: links between ``spans`` (by span id), shown with them where the project has relations on
    relations: tuple[Mapping[str, Any], ...] = ()


def server_has_relations(server: DoccanoServer, pid: int) -> bool:
    """Whether Doccano project ``pid`` has relations on (then imports use the relation format)."""
    project = server.http.request("GET", f"/v1/projects/{pid}")
    return bool(project.get("use_relation"))


def open_task_project(server: DoccanoServer, guideline: Guideline, where: TaskProject) -> int:
    """Create or update the project with her as its only annotator; DoccanoError when she has no account."""
    if server.missing_users([where.person]):
        raise DoccanoError(
            f"no Doccano account for {where.person!r} at {server.url}: she creates her own (scripts/doccano.sh adduser)"
        )
    return server.sync_project(where.name, guideline, {where.person: "annotator"})


def import_items(
    store: Store,
    server: DoccanoServer,
    where: TaskProject,
    pid: int,
    items: Sequence[TaskItem],
    *,
    guideline_version: str | None = None,
) -> tuple[int, int]:
    """Import the items the project lacks; ``(imported, already there)``. Idempotent and resumable.
    ``guideline_version`` (the one the project was just synced with) goes into each example's metadata,
    so a decision pulled later records the guideline it was made under."""
    key, person = where.key, where.person
    for task_id, note_ids in open_imports(store, key, person, server.url, pid).items():  # a killed run's import
        await_earlier_import(server, pid, task_id, note_ids)
        close_imports(store, key, person, [task_id])
    on_server = server.examples_by_note(pid)
    links = example_links(store, key, person)
    stale = [nid for (_, nid), ln in links.items() if (ln.server, ln.doccano_project_id, ln.example_id) !=
             (server.url, pid, on_server.get(nid))]  # fmt: skip
    if stale:
        drop_links(store, key, person, stale)
    linked = {nid for (_, nid) in links} - set(stale)
    todo = [it for it in items if it.note_id not in linked]
    recovered = [it.note_id for it in todo if it.note_id in on_server]
    save_links(store, key, person, server.url, pid, [(nid, on_server[nid]) for nid in recovered])
    to_import = [it for it in todo if it.note_id not in on_server]
    if not to_import:
        return 0, len(items) - len(todo)
    notes = {n.id: n for n in store.notes([it.note_id for it in to_import])}
    rel_links: dict[str, list[dict[str, Any]]] | None = None
    if server_has_relations(server, pid):
        encoded = {it.note_id: encode_with_relations(it.spans, it.relations) for it in to_import}
        payload = [(it.note_id, notes[it.note_id].text, encoded[it.note_id][0]) for it in to_import]
        rel_links = {nid: e[1] for nid, e in encoded.items()}
    else:
        payload = [(it.note_id, notes[it.note_id].text, encode_spans(it.spans)) for it in to_import]
    marker = f"{UPLOADING}{uuid.uuid4().hex}"  # recorded before the upload, as in the annotators' push
    ids = [it.note_id for it in to_import]
    record_import(store, key, person, server.url, pid, marker, ids)
    stamp = {"guideline_version": guideline_version} if guideline_version else {}
    meta = {it.note_id: {**it.meta, **stamp} for it in to_import}
    task_id = server.start_import(pid, payload, meta=meta, relations=rel_links)
    set_import_task(store, key, person, marker, task_id)
    crash_point(f"{where.task}.import_started")
    server.wait_import(pid, task_id)
    on_server = server.examples_by_note(pid)
    save_links(store, key, person, server.url, pid, [(nid, on_server[nid]) for nid in ids])
    close_imports(store, key, person, [task_id])
    return len(to_import), len(items) - len(todo)


@dataclass(frozen=True)
class DoneExample:
    note: Note
    spans: tuple[Span, ...]
    comment: str | None
    example_id: int
    relations: tuple[Mapping[str, Any], ...] = ()
    #: the guideline version the example was imported under (None: imported before it was recorded)
    guideline_version: str | None = None


def read_done(
    store: Store, server: DoccanoServer, guideline: Guideline, where: TaskProject, *, command: str
) -> Iterator[DoneExample | tuple[str, str]]:
    """Each example she marked done, checked (:class:`DoneExample`), or ``(note id, problem)``."""
    links = {ln.example_id: ln for ln in example_links(store, where.key, where.person).values()}
    if not links:
        raise PolicyError(f"nothing pushed to {where.name!r}: run '{command}' first")
    project = server.find_project(where.name)
    if project is None or any(ln.doccano_project_id != int(project["id"]) for ln in links.values()):
        raise DoccanoError(f"Doccano project {where.name!r} at {server.url} is not the one pushed to: run {command}")
    pid, uid = int(project["id"]), server.user_id(where.person)
    notes = {n.id: n for n in store.notes([ln.note_id for ln in links.values()])}
    for ex in server.export_confirmed(pid):
        link = links.get(int(ex["id"]))
        if link is None:
            continue
        try:
            if not any(int(st.get("confirmed_by", -1)) == uid for st in server.example_states(pid, int(ex["id"]))):
                raise DoccanoError(f"example {ex['id']} was marked done by someone other than {where.person!r}")
            spans, relations = checked_example(notes[link.note_id], ex, guideline)
        except DoccanoError as exc:
            yield link.note_id, str(exc)
            continue
        version = ex.get("guideline_version")
        yield DoneExample(
            notes[link.note_id], spans, _comment(ex), int(ex["id"]), tuple(relations),
            str(version) if version else None,
        )  # fmt: skip


def _comment(example: Mapping[str, Any]) -> str | None:
    comments = example.get("Comments") or example.get("comments") or []
    texts = [str(c.get("comment", c.get("text", "")) if isinstance(c, dict) else c).strip() for c in comments]
    texts = [t for t in texts if t]
    return " / ".join(texts) if texts else None


def identity(span: Span) -> tuple[Any, ...]:
    """Offsets, label and the effective value of every attribute (an absent one is its default)."""
    return (span.start, span.end, span.label, span.negation, span.temporality, span.experiencer)


def same_spans(stored: Any, spans: Sequence[Span]) -> bool:
    """Whether stored spans (Span or span dicts) are exactly these spans."""
    have = {identity(d if isinstance(d, Span) else Span.from_dict(d)) for d in stored or []}
    return have == {identity(s) for s in spans}
