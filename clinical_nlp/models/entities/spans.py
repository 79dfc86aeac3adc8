"""Span policy for training data, data hashing, line splitting and boundary tidying."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from clinical_nlp.types import AnnotatedNote, Note, Span


@dataclass
class PolicyStats:
    kept: int = 0
    discontinuous_to_outer: int = 0
    dropped_overlap: int = 0
    dropped_label: int = 0
    dropped_unaligned: int = 0


def training_spans(
    doc: AnnotatedNote, labels: Sequence[str], stats: PolicyStats | None = None
) -> list[tuple[int, int, str]]:
    """The non-overlapping ``(start, end, label)`` a tagger learns from ``doc`` (see module doc)."""
    stats = stats if stats is not None else PolicyStats()
    order = {label: i for i, label in enumerate(labels)}
    cands = []
    for s in doc.spans:
        if s.label not in order:
            stats.dropped_label += 1
            continue
        if s.fragments is not None:
            stats.discontinuous_to_outer += 1
        start, end = s.start, min(s.end, len(doc.text))
        # trim surrounding whitespace so boundaries sit on tokens
        while start < end and doc.text[start].isspace():
            start += 1
        while end > start and doc.text[end - 1].isspace():
            end -= 1
        if end <= start:
            stats.dropped_unaligned += 1
            continue
        cands.append((start, end, s.label))
    cands.sort(key=lambda c: (-(c[1] - c[0]), order[c[2]], c[0]))
    taken: list[tuple[int, int, str]] = []
    for c in cands:
        if any(c[0] < t[1] and t[0] < c[1] for t in taken):
            stats.dropped_overlap += 1
            continue
        taken.append(c)
    stats.kept += len(taken)
    return sorted(taken)


def data_hash(docs: Sequence[AnnotatedNote], labels: Sequence[str] | None = None) -> str:
    """sha256 over ids, texts and (label-filtered) spans, order-independent."""
    keep = set(labels) if labels is not None else None
    rows = []
    for d in docs:
        spans = sorted((s.pieces, s.label) for s in d.spans if keep is None or s.label in keep)
        rows.append(json.dumps([d.id, d.text, spans], ensure_ascii=False))
    digest = hashlib.sha256()
    for r in sorted(rows):
        digest.update(hashlib.sha256(r.encode("utf-8")).digest())
    return digest.hexdigest()


def split_note_lines(doc: AnnotatedNote) -> list[AnnotatedNote]:
    """Cut a note at line breaks that no span crosses; span offsets are shifted to each piece."""
    text = doc.text
    cuts = [0]
    for k, ch in enumerate(text):
        if ch == "\n" and not any(s.start <= k < s.end for s in doc.spans):
            cuts.append(k + 1)
    cuts.append(len(text))
    pieces = []
    for n, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        if not text[a:b].strip():
            continue
        spans = tuple(
            replace(
                s,
                start=s.start - a,
                end=s.end - a,
                fragments=None if s.fragments is None else tuple((x - a, y - a) for x, y in s.fragments),
            )
            for s in doc.spans
            if a <= s.start and s.end <= b
        )
        pieces.append(AnnotatedNote(Note(f"{doc.id}#{n}", text[a:b]), spans))
    return pieces


#: trailing pieces a predicted span never keeps: punctuation, conjunctions, articles and
#: prepositions left over from coordinations ("bowel obstruction or", "<or=10 &", "ALT)").
#: In the Chia train split no gold span ends with " and" / " or" / "&" / "(".
_TRAILING_JUNK = re.compile(
    r"(?:[\s,;:&/(\[]+|\s+(?:and|or|of|to|the|a|an|with|in|for|at|by|on|as|from|and/or|&)|\s*\.)+$", re.I
)

_LEADING_JUNK = re.compile(r"(?:[\s,;:&/)\]]+|(?:and|or|and/or)\s+)+", re.I)


def tidy_boundaries(text: str, start: int, end: int) -> tuple[int, int]:
    """Trim leftover coordination words and unbalanced brackets from a predicted span's edges
    (never to an empty span). Measured on Chia dev: +1.5 points strict micro-F1."""
    a, b = start, end
    for _ in range(3):
        m = _TRAILING_JUNK.search(text, a, b)
        if m and m.start() > a and m.end() == b:
            b = m.start()
        seg = text[a:b]
        if seg.endswith(")") and seg.count("(") < seg.count(")") and b - 1 > a:
            b -= 1
        seg = text[a:b]
        if seg.startswith("(") and seg.count("(") > seg.count(")") and a + 1 < b:
            a += 1
        m = _LEADING_JUNK.match(text, a, b)
        if m and m.end() < b:
            a = m.end()
    return a, b


def tidy_spans(text: str, spans: Sequence[Span]) -> tuple[Span, ...]:
    out = []
    for s in spans:
        a, b = tidy_boundaries(text, s.start, s.end)
        out.append(s if (a, b) == (s.start, s.end) else replace(s, start=a, end=b, text=text[a:b]))
    return tuple(out)
