"""Edit summary of a human annotation against its pre-annotation (pure functions).

``edit_summary(pre, final)`` counts what the annotator did to the machine
suggestions. Matching is one-to-one and greedy, in this order:

1. exact boundaries and label → ``accepted`` (attributes equal) or
   ``changed_attributes`` (any of negation/temporality/experiencer differs,
   absent values compared as their defaults);
2. exact boundaries, other label → ``changed_label``;
3. overlapping boundaries, same label → ``changed_boundary``;
4. what is left of ``pre`` is ``deleted``, what is left of ``final`` is ``added``.

``total`` = every count except ``accepted``: the annotation cost used by
active learning. :func:`full_edit_summary` adds the relation counts (``relations_added``,
``relations_deleted``, ``relations_changed_type``, and ``relations_kept``), the changed ones
counted into ``total``.

Example:
    >>> from clinical_nlp.types import Span
    >>> pre = [Span(0, 5, "Condition"), Span(10, 14, "Drug")]
    >>> final = [Span(0, 5, "Condition", attributes={"negation": "negated"})]
    >>> edit_summary(pre, final)["total"]
    2
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from clinical_nlp.consensus.relations import relation_edits, relation_keys
from clinical_nlp.types import ATTRIBUTE_DEFAULTS, Span

EDIT_KEYS = (
    "accepted",
    "deleted",
    "added",
    "changed_label",
    "changed_boundary",
    "changed_attributes",
)
RELATION_EDIT_KEYS = ("relations_kept", "relations_added", "relations_deleted", "relations_changed_type")


def normalized_attributes(span: Span) -> dict[str, str]:
    """The span's attributes with defaults dropped (absent == default)."""
    return {k: v for k, v in span.attributes.items() if ATTRIBUTE_DEFAULTS.get(k) != v and v is not None}


def _overlap(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def edit_summary(pre: Iterable[Span], final: Iterable[Span]) -> dict[str, int]:
    """Count accepted / deleted / added / changed spans between two span lists."""
    left: list[Span | None] = list(pre)
    right: list[Span | None] = list(final)
    counts = dict.fromkeys(EDIT_KEYS, 0)

    def match(predicate, key_same_attrs: str | None, key_other: str) -> None:
        for i, p in enumerate(left):
            if p is None:
                continue
            for j, f in enumerate(right):
                if f is None or not predicate(p, f):
                    continue
                if key_same_attrs is not None and normalized_attributes(p) == normalized_attributes(f):
                    counts[key_same_attrs] += 1
                else:
                    counts[key_other] += 1
                left[i] = None
                right[j] = None
                break

    # exact match first, with attributes equal (so a duplicate with other attributes doesn't steal it)
    for i, p in enumerate(left):
        if p is None:
            continue
        for j, f in enumerate(right):
            if f is not None and f.key() == p.key() and normalized_attributes(p) == normalized_attributes(f):
                counts["accepted"] += 1
                left[i] = right[j] = None
                break
    match(lambda p, f: p.key() == f.key(), None, "changed_attributes")
    match(lambda p, f: (p.start, p.end) == (f.start, f.end), None, "changed_label")
    match(lambda p, f: p.label == f.label and _overlap(p, f), None, "changed_boundary")
    counts["deleted"] = sum(1 for p in left if p is not None)
    counts["added"] = sum(1 for f in right if f is not None)
    counts["total"] = sum(v for k, v in counts.items() if k != "accepted")
    return counts


def full_edit_summary(
    pre: Sequence[Span],
    pre_relations: Iterable[Mapping[str, Any]],
    final: Sequence[Span],
    final_relations: Iterable[Mapping[str, Any]],
    undirected: frozenset[str] = frozenset(),
) -> dict[str, int]:
    """:func:`edit_summary` plus the relation counts; a relation added, deleted or retyped is an edit."""
    counts = edit_summary(pre, final)
    rel = relation_edits(
        relation_keys(pre, pre_relations, undirected), relation_keys(final, final_relations, undirected)
    )
    counts.update(rel)
    counts["total"] += rel["relations_added"] + rel["relations_deleted"] + rel["relations_changed_type"]
    return counts


def add_summaries(summaries: Sequence[dict[str, int]]) -> dict[str, int]:
    """Sum several edit summaries key by key (e.g. per annotator); relation keys when any summary has them."""
    with_relations = any(k in s for s in summaries for k in RELATION_EDIT_KEYS)
    out = dict.fromkeys((*EDIT_KEYS, *(RELATION_EDIT_KEYS if with_relations else ()), "total"), 0)
    for s in summaries:
        for k in out:
            out[k] += int(s.get(k, 0))
    return out


def unchanged_suggestions(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Notes read by two or more annotators on which every one accepted the pre-annotations unchanged.

    Agreement on those notes measures the suggestions, not the annotators: a high kappa there
    says nothing about independent judgement. ``rows``: pull rows (``id``, ``annotator``,
    ``edits``). Returns ``notes`` (ids), ``share`` of the multiply read notes, and ``warning``
    (None when no such note).
    """
    totals: dict[str, list[int]] = {}
    for r in rows:
        totals.setdefault(str(r["id"]), []).append(int((r.get("edits") or {}).get("total", 0)))
    multi = {nid: t for nid, t in totals.items() if len(t) >= 2}
    unchanged = sorted(nid for nid, t in multi.items() if all(x == 0 for x in t))
    share = len(unchanged) / len(multi) if multi else 0.0
    warning = (
        f"on {len(unchanged)} of {len(multi)} notes read by two or more annotators ({share:.0%}) every "
        "annotator accepted the pre-annotations unchanged: agreement there measures the suggestions, "
        "not the annotators"
        if unchanged
        else None
    )
    return {"notes": unchanged, "share": share, "warning": warning}
