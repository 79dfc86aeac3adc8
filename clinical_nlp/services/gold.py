"""The one rule for "the gold of a note": one document per note, by a documented precedence.

Per note the gold annotation used is the first class present in this order, and within a
class the latest round, then the latest timestamp:

1. ``adjudicated``: an expert decision (``source="adjudication"``);
2. ``consensus``: agreement of two or more annotators (``source="consensus:..."``);
3. ``imported``: gold ingested from a corpus file (``source="import:..."``);
4. ``single``: one annotator only (``edits["annotators"]`` of length 1): used only when the
   label schema's ``gold.allow_single_annotator`` is true, else reported as excluded.

Example:
    >>> from clinical_nlp.types import Annotation, Span
    >>> a = Annotation("n1", "consensus", (Span(0, 2, "Drug"),), source="consensus:majority")
    >>> b = Annotation("n1", "dr_x", (), source="adjudication")
    >>> chosen, excluded = resolve_gold([a, b])
    >>> chosen["n1"].source, excluded
    ('adjudication', [])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clinical_nlp.config import GoldPolicy
from clinical_nlp.types import Annotation

PRECEDENCE: tuple[str, ...] = ("adjudicated", "consensus", "imported", "single")


@dataclass(frozen=True)
class Excluded:
    item: str
    reason: str


def gold_class(annotation: Annotation) -> str:
    """Which precedence class a gold annotation belongs to."""
    source = annotation.source or ""
    annotators = (annotation.edits or {}).get("annotators")
    if source.startswith("adjudication"):
        return "adjudicated"
    if isinstance(annotators, list) and len(annotators) < 2:
        return "single"
    if source.startswith("consensus"):
        return "consensus"
    return "imported"


def resolve_gold(
    annotations: Iterable[Annotation], policy: GoldPolicy | None = None
) -> tuple[dict[str, Annotation], list[Excluded]]:
    """``({item: the gold annotation used}, [items excluded and why])``, one entry per item."""
    policy = policy or GoldPolicy()
    by_item: dict[str, list[Annotation]] = {}
    for a in annotations:
        by_item.setdefault(a.item, []).append(a)
    chosen: dict[str, Annotation] = {}
    excluded: list[Excluded] = []
    for item in sorted(by_item):
        candidates = [a for a in by_item[item] if gold_class(a) != "single" or policy.allow_single_annotator]
        if not candidates:
            excluded.append(Excluded(item, "one annotator only (label schema gold.allow_single_annotator is false)"))
            continue
        chosen[item] = min(
            candidates,
            key=lambda a: (PRECEDENCE.index(gold_class(a)), -(a.round or 0), _neg(a.timestamp)),
        )
    return chosen, excluded


def _neg(timestamp: str | None) -> tuple[int, ...]:
    """Sort key putting later ISO timestamps first."""
    return tuple(-ord(c) for c in (timestamp or ""))


__all__ = ["PRECEDENCE", "Excluded", "gold_class", "resolve_gold"]
