"""Adjudication rules, store-free: why an item needs an expert, and the queue's record types.

The persisted queue (build, list, decide) lives in :mod:`clinical_nlp.services.adjudication`.

Example:
    >>> from clinical_nlp.config import AgreementThresholds
    >>> queue_reasons(QueueCandidate("n1", "text", {"span_f1": 0.5}), AgreementThresholds(), set())
    ['span_f1 0.500 < 0.80']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clinical_nlp.config import AgreementThresholds
from clinical_nlp.errors import ClinicalNLPError

# metric name in QueueCandidate.scores -> attribute of AgreementThresholds
THRESHOLD_FOR = {
    "span_f1": "min_span_f1",
    "relation_f1": "min_relation_f1",
    "cohen_kappa": "min_cohen_kappa",
    "attribute_kappa": "min_cohen_kappa",
    "iou": "min_iou",
    "iou_oncology": "min_iou_oncology",
}


class AdjudicationError(ClinicalNLPError):
    """Unknown queue entry, an entry already decided, or a bad decision."""


@dataclass(frozen=True)
class QueueCandidate:
    """An item (and unit, ``"*"`` = whole item) with its agreement scores and labels."""

    item: str
    modality: str
    scores: Mapping[str, float | None] = field(default_factory=dict)
    labels: Iterable[str] = ()
    unit: str = "*"


@dataclass(frozen=True)
class QueueEntry:
    id: int
    item: str
    unit: str
    modality: str
    reasons: list[str]
    scores: dict[str, Any]
    expert: str | None
    status: str
    decision: Any
    decided_by: str | None
    reason: str | None


def queue_reasons(candidate: QueueCandidate, thresholds: AgreementThresholds, safety_critical: set[str]) -> list[str]:
    """Why a candidate needs adjudication (empty list: it does not); one annotator only is always a reason."""
    reasons = []
    annotators = candidate.scores.get("annotators")
    if annotators is not None and annotators < 2:
        reasons.append("only one annotator: no agreement to measure")
    ties = candidate.scores.get("tied_units")
    if ties:
        reasons.append(f"{int(ties)} unit(s) without a majority (label, boundaries or attribute tie)")
    for name, value in candidate.scores.items():
        attr = THRESHOLD_FOR.get(name)
        if attr is None:
            continue
        bar = float(getattr(thresholds, attr))
        if value is None:
            continue
        if value < bar:
            reasons.append(f"{name} {value:.3f} < {bar:.2f}")
    critical = sorted(set(candidate.labels) & safety_critical)
    if critical:
        reasons.append(f"safety-critical label(s): {', '.join(critical)}")
    return reasons
