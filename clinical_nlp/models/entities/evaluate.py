"""Strict and overlap P/R/F1 of an entity model on gold notes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from clinical_nlp.metrics import MatchMode, corpus_span_prf
from clinical_nlp.models.entities.base import EntityModel
from clinical_nlp.types import AnnotatedNote


def evaluate_entity_model(
    model: EntityModel, docs: Sequence[AnnotatedNote], labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """Strict (exact boundaries) and overlap P/R/F1 on gold ``docs``, micro and per label.

    Gold spans keep their original form (discontinuous spans are not rewritten),
    so the strict score is the one a user of the raw annotations sees;
    ``strict_outer`` scores a discontinuous gold span by its outer range
    (``start``/``end`` only), which is how a flat tagger can match it at best.
    """
    labels = tuple(labels) if labels is not None else model.labels
    preds = model.predict([d.note for d in docs])
    gold = [d.spans for d in docs]
    # what a flat tagger can reach at best: a discontinuous gold span as its outer range
    outer = [tuple(replace(s, fragments=None) if s.fragments is not None else s for s in spans) for spans in gold]
    out: dict[str, Any] = {"n_docs": len(docs), "labels": list(labels)}
    modes: tuple[tuple[MatchMode, str, list], ...] = (
        ("exact", "strict", gold),
        ("overlap", "overlap", gold),
        ("exact", "strict_outer", outer),
    )
    for mode, key, ref in modes:
        prf = corpus_span_prf(ref, preds, mode=mode, labels=labels)
        out[key] = {
            "micro": prf["__micro__"].as_dict(),
            "per_label": {lab: prf[lab].as_dict() for lab in labels if lab in prf},
        }
    return out
