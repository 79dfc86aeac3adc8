"""Span-level precision / recall / F1 (strict and overlap), micro and per label.

Pure Python: used for model evaluation and for agreement between annotators.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from clinical_nlp.types import Span

MatchMode = Literal["exact", "overlap"]


@dataclass(frozen=True, slots=True)
class PRF:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 1.0

    def __add__(self, other: PRF) -> PRF:
        return PRF(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def _overlaps(a: Span, b: Span) -> bool:
    return any(x0 < y1 and y0 < x1 for x0, x1 in a.pieces for y0, y1 in b.pieces)


def match_spans(gold: Sequence[Span], pred: Sequence[Span], mode: MatchMode = "exact") -> list[tuple[int, int]]:
    """One-to-one matches (gold index, pred index) with equal labels.

    ``exact``: same pieces (boundaries, fragments included). ``overlap``: any
    shared character; greedy by largest overlap so each span matches once.
    """
    if mode == "exact":
        index: dict[tuple, list[int]] = defaultdict(list)
        for j, p in enumerate(pred):
            index[(p.pieces, p.label)].append(j)
        pairs = []
        for i, g in enumerate(gold):
            bucket = index.get((g.pieces, g.label))
            if bucket:
                pairs.append((i, bucket.pop(0)))
        return pairs
    candidates = []
    for i, g in enumerate(gold):
        for j, p in enumerate(pred):
            if g.label == p.label and _overlaps(g, p):
                shared = sum(max(0, min(x1, y1) - max(x0, y0)) for x0, x1 in g.pieces for y0, y1 in p.pieces)
                candidates.append((-shared, i, j))
    candidates.sort()
    used_g: set[int] = set()
    used_p: set[int] = set()
    pairs = []
    for _, i, j in candidates:
        if i not in used_g and j not in used_p:
            used_g.add(i)
            used_p.add(j)
            pairs.append((i, j))
    return pairs


def span_prf(
    gold: Sequence[Span], pred: Sequence[Span], mode: MatchMode = "exact", labels: Iterable[str] | None = None
) -> dict[str, PRF]:
    """Counts per label for one document (key ``"__micro__"`` sums them)."""
    keep = set(labels) if labels is not None else None
    g = [s for s in gold if keep is None or s.label in keep]
    p = [s for s in pred if keep is None or s.label in keep]
    pairs = match_spans(g, p, mode)
    out: dict[str, PRF] = defaultdict(lambda: PRF(0, 0, 0))
    matched_g = {i for i, _ in pairs}
    matched_p = {j for _, j in pairs}
    for i, s in enumerate(g):
        out[s.label] += PRF(1, 0, 0) if i in matched_g else PRF(0, 0, 1)
    for j, s in enumerate(p):
        if j not in matched_p:
            out[s.label] += PRF(0, 1, 0)
    micro = PRF(0, 0, 0)
    for v in out.values():
        micro += v
    result = dict(out)
    result["__micro__"] = micro
    return result


def corpus_span_prf(
    gold_docs: Sequence[Sequence[Span]],
    pred_docs: Sequence[Sequence[Span]],
    mode: MatchMode = "exact",
    labels: Iterable[str] | None = None,
) -> dict[str, PRF]:
    """Micro-averaged counts over a corpus, per label and ``"__micro__"``."""
    if len(gold_docs) != len(pred_docs):
        raise ValueError(f"gold has {len(gold_docs)} documents but predictions have {len(pred_docs)}")
    labels = list(labels) if labels is not None else None
    total: dict[str, PRF] = defaultdict(lambda: PRF(0, 0, 0))
    for g, p in zip(gold_docs, pred_docs, strict=True):
        for key, value in span_prf(g, p, mode, labels).items():
            total[key] += value
    total.setdefault("__micro__", PRF(0, 0, 0))
    return dict(total)
