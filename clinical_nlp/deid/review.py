"""Privacy review queue: what the detector is unsure of goes to a privacy officer, redacted until then.

Three kinds of item, each a :class:`~clinical_nlp.deid.core.PHISpan` with a ``review`` reason:

* a **near miss**: a word the tagger leaves as not-PHI, but with P(not PHI) under ``review_below``
  (above the detection threshold): added as PHI (redacted) and flagged;
* an **uncertain detection**: a name or place the tagger marks with P(not PHI) of 0.5 or more;
* a **disagreement**: a name or place a context rule found while the tagger is sure it is not PHI.

Recall-first: every flagged item is replaced with a surrogate like any detection, so nothing waits
in the clear; the officer's verdict (``clinical-nlp deid-review``) confirms or rejects the flag, and a
note with open items is not pushed to Doccano.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

#: P(not PHI) at or above which a rule-found name/place counts as a disagreement with the tagger
DISAGREE_AT = 0.999
#: P(not PHI) at or above which a tagger detection counts as uncertain
UNCERTAIN_AT = 0.5
_FLAGGED_LABELS = frozenset({"PTName", "PTNameInitial", "RelativeProxyName", "HCPName", "Location"})


def flag_for_review(
    text: str,
    spans: Sequence[Any],
    p_o: Mapping[int, float],
    words: Mapping[int, tuple[int, str]],
    threshold: float,
    review_below: float,
) -> list[Any]:
    """``spans`` with review reasons set where the detector is unsure, plus the near misses."""
    from clinical_nlp.deid.context import NOT_NAMES
    from clinical_nlp.deid.shield import shielded

    out = []
    for s in spans:
        po = p_o.get(s.start)
        if s.review is None and po is not None and s.label in _FLAGGED_LABELS:
            if po >= DISAGREE_AT:
                s = replace(s, review=f"disagreement: a rule says {s.label}, the tagger P(not PHI) {po:.4f}")
            elif UNCERTAIN_AT <= po < threshold:
                s = replace(s, review=f"uncertain {s.label}: P(not PHI) {po:.3f}")
        out.append(s)
    taken = sorted((s.start, s.end) for s in spans)
    near: list[tuple[int, int, str, list[float]]] = []
    for a, (b, label) in sorted(words.items()):
        po = p_o[a]
        if not threshold <= po < review_below or label in ("Date", "DateYear"):
            continue
        word = text[a:b]
        if len(word) < 2 or word.lower() in NOT_NAMES or shielded(word) or any(x < b and a < y for x, y in taken):
            continue
        if near and near[-1][2] == label and _joined(text, near[-1][1], a):  # one item, one surrogate
            near[-1] = (near[-1][0], b, label, [*near[-1][3], po])
        else:
            near.append((a, b, label, [po]))
    cls = type(spans[0]) if spans else _span_type()
    for a, b, label, pos in near:
        words_note = f" ({len(pos)} words)" if len(pos) > 1 else ""
        out.append(cls(a, b, label, f"possible {label}: P(not PHI) {min(pos):.3f}{words_note}"))
    return sorted(out, key=lambda s: (s.start, s.end))


def _joined(text: str, end: int, start: int) -> bool:
    """Whether two words are one name: only spaces or tabs between them (a line break parts them)."""
    gap = text[end:start]
    return bool(gap) and not gap.strip(" \t")


def _span_type() -> Any:
    from clinical_nlp.deid.core import PHISpan

    return PHISpan


def is_near_miss(span: Any) -> bool:
    """Whether a flagged item was added by the queue (the detector alone would have left it)."""
    return bool(span.review) and span.review.startswith("possible ")
