"""The notes a new round may select: not gold, not in a round, not with annotators, through the push gate.

A note a person has annotated, or one already in an annotator's Doccano project (pushed outside the
rounds, with ``doccano push``), is not "unlabelled": selecting it again would push nothing new and
tell the annotators to correct notes they have done.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from clinical_nlp.store import AnnotationRow, DoccanoExampleRow, Store
from clinical_nlp.types import Note


def gold_ids(store: Store) -> set[str]:
    return {a.item for a in store.annotations(kind="gold")}


def with_people_ids(store: Store) -> set[str]:
    """Notes a person has annotated, or that are in an annotator's Doccano project."""
    with store.session() as s:
        sent = set(s.scalars(select(DoccanoExampleRow.note_id).distinct()))
        annotated = set(s.scalars(select(AnnotationRow.item).where(AnnotationRow.kind == "human").distinct()))
    return sent | annotated


def round_pool(store: Store, in_rounds: Iterable[str], *, require_deid: bool) -> tuple[list[Note], dict[str, int]]:
    """The candidate notes in store order, and how many others were left out for each reason."""
    taken, with_people = gold_ids(store) | set(in_rounds), with_people_ids(store)
    pool = [n for n in store.notes() if n.id not in taken]
    held = {"already with annotators": sum(n.id in with_people for n in pool)}
    pool = [n for n in pool if n.id not in with_people]
    if require_deid and pool:
        from clinical_nlp.services.privacy import ready_to_push

        pool, gate = ready_to_push(store, pool)
        held.update(gate)
    return pool, {why: n for why, n in held.items() if n}


__all__ = ["gold_ids", "round_pool", "with_people_ids"]
