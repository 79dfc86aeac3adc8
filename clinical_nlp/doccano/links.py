"""The store's record of what is on Doccano: one row per (note, annotator) example, and the imports started.

Rows name the server and the Doccano project, so a reset server (or another one) is noticed:
a link whose example is not on the server as recorded is *stale*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select

from clinical_nlp.store import DoccanoExampleRow, DoccanoImportRow, Store

#: Doccano project names are at most 100 characters (doccano 1.8.4 model field)
MAX_PROJECT_NAME = 100


def annotator_project_name(project: str, annotator: str) -> str:
    """The Doccano project of one annotator: ``<project>--<annotator>`` (only she annotates there)."""
    name = f"{project}--{annotator}"
    if len(name) > MAX_PROJECT_NAME:
        from clinical_nlp.errors import DoccanoError

        raise DoccanoError(
            f"Doccano project name {name!r} is longer than {MAX_PROJECT_NAME} characters: "
            "choose a shorter doccano.project or annotator name"
        )
    return name


@dataclass(frozen=True)
class ExampleLink:
    annotator: str
    note_id: str
    server: str
    doccano_project_id: int
    example_id: int


def example_links(store: Store, project: str, annotator: str | None = None) -> dict[tuple[str, str], ExampleLink]:
    """(annotator, note id) → its example in that annotator's Doccano project."""
    query = select(DoccanoExampleRow).where(DoccanoExampleRow.project == project)
    if annotator is not None:
        query = query.where(DoccanoExampleRow.annotator == annotator)
    with store.session() as s:
        return {
            (r.annotator, r.note_id): ExampleLink(
                r.annotator,
                r.note_id,
                r.server,
                r.doccano_project_id,
                r.example_id,
            )
            for r in s.scalars(query)
        }


def save_links(
    store: Store, project: str, annotator: str, server: str, pid: int, examples: Iterable[tuple[str, int]]
) -> int:
    """Record ``(note id, example id)`` pairs in one transaction; returns how many."""
    n = 0
    with store.session() as s:
        for note_id, example_id in examples:
            s.add(
                DoccanoExampleRow(
                    project=project,
                    annotator=annotator,
                    note_id=note_id,
                    server=server,
                    doccano_project_id=pid,
                    example_id=example_id,
                )
            )
            n += 1
    return n


def drop_links(store: Store, project: str, annotator: str, note_ids: Sequence[str]) -> None:
    """Forget links whose example is not on the server as recorded (those notes are imported again)."""
    with store.session() as s:
        s.execute(
            delete(DoccanoExampleRow).where(
                DoccanoExampleRow.project == project,
                DoccanoExampleRow.annotator == annotator,
                DoccanoExampleRow.note_id.in_(list(note_ids)),
            )
        )


#: task id recorded before the upload is sent, replaced by the server's once it answers
UPLOADING = "uploading:"


def set_import_task(store: Store, project: str, annotator: str, marker: str, task_id: str) -> None:
    """Replace the ``UPLOADING`` marker of an import with the task id the server answered."""
    with store.session() as s:
        for r in s.scalars(
            select(DoccanoImportRow).where(
                DoccanoImportRow.project == project,
                DoccanoImportRow.annotator == annotator,
                DoccanoImportRow.task_id == marker,
            )
        ):
            r.task_id = task_id


def record_import(
    store: Store, project: str, annotator: str, server: str, pid: int, task_id: str, note_ids: Sequence[str]
) -> None:
    """Record an import task as started (before waiting on it)."""
    with store.session() as s:
        s.add(
            DoccanoImportRow(
                project=project,
                annotator=annotator,
                server=server,
                doccano_project_id=pid,
                task_id=task_id,
                note_ids=list(note_ids),
            )
        )


def open_imports(store: Store, project: str, annotator: str, server: str, pid: int) -> dict[str, list[str]]:
    """Imports started into this Doccano project and not seen finished: task id → note ids."""
    with store.session() as s:
        return {
            r.task_id: list(r.note_ids or [])
            for r in s.scalars(
                select(DoccanoImportRow).where(
                    DoccanoImportRow.project == project,
                    DoccanoImportRow.annotator == annotator,
                    DoccanoImportRow.server == server,
                    DoccanoImportRow.doccano_project_id == pid,
                    DoccanoImportRow.finished.is_(False),
                )
            )
        }


def close_imports(store: Store, project: str, annotator: str, task_ids: Sequence[str]) -> None:
    with store.session() as s:
        for r in s.scalars(
            select(DoccanoImportRow).where(
                DoccanoImportRow.project == project,
                DoccanoImportRow.annotator == annotator,
                DoccanoImportRow.task_id.in_(list(task_ids)),
            )
        ):
            r.finished = True


def require_links(store: Store, project: str) -> dict[tuple[str, str], ExampleLink]:
    """:func:`example_links`, or DoccanoError saying nothing was pushed (or only by the old shared-project design)."""
    from clinical_nlp.errors import DoccanoError
    from clinical_nlp.store import DoccanoLinkRow

    links = example_links(store, project)
    if links:
        return links
    with store.session() as s:
        legacy = s.scalars(select(DoccanoLinkRow.id).where(DoccanoLinkRow.project == project).limit(1)).first()
    if legacy is not None:
        raise DoccanoError(
            f"project {project!r} was pushed by the shared-project design (one Doccano project for every "
            "annotator, their passwords held); this version keeps one project per annotator: push the notes again"
        )
    raise DoccanoError(f"nothing of project {project!r} has been pushed to Doccano yet (doccano push)")
