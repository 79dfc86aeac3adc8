"""Modality-agnostic consensus core: agreement, aggregation and adjudication over one long frame.

The frame has columns ``item``, ``annotator``, ``unit``, ``label`` (optional ``score``); a unit is
what the modality matches (a text span, a nodule, an ECG event). Adapters in
:mod:`clinical_nlp.consensus.adapters` build frames for text, imaging and signals.
"""

from clinical_nlp.consensus.aggregation import Aggregation, aggregate, detection_prf
from clinical_nlp.consensus.agreement import (
    Agreement,
    ConsensusError,
    box_iou,
    cohen_kappa,
    dice,
    fleiss_kappa,
    iou,
    krippendorff_alpha,
    mean_pairwise,
    pairwise_cohen_kappa,
    per_label,
    percent_agreement,
    summarize,
    validate_frame,
)

__all__ = [
    "Aggregation",
    "Agreement",
    "ConsensusError",
    "aggregate",
    "box_iou",
    "cohen_kappa",
    "detection_prf",
    "dice",
    "fleiss_kappa",
    "iou",
    "krippendorff_alpha",
    "mean_pairwise",
    "pairwise_cohen_kappa",
    "per_label",
    "percent_agreement",
    "summarize",
    "validate_frame",
]
