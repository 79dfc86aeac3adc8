"""Relations between a pre-annotated note's spans: a ``train relations`` model, filtered by the label schema."""

from __future__ import annotations

from typing import Any

from clinical_nlp.config import LabelSchema
from clinical_nlp.types import AnnotatedNote

_RELATION_MODELS: dict[str, Any] = {}


def predict_relations(doc: AnnotatedNote, model_dir: str, schema: LabelSchema) -> AnnotatedNote:
    """The document with span ids and the relations the model predicts between its spans, those the label
    schema allows (type known, head and tail labels permitted); each with its ``score``."""
    from dataclasses import replace

    from clinical_nlp.consensus.relations import with_span_ids
    from clinical_nlp.models.relations import load_relation_model

    if model_dir not in _RELATION_MODELS:
        _RELATION_MODELS[model_dir] = load_relation_model(model_dir)
    spans = with_span_ids(doc.spans)
    row = {"id": doc.id, "text": doc.text, "spans": [{"id": s.id, "start": s.start, "end": s.end, "label": s.label}
                                                     for s in spans]}  # fmt: skip
    by_id = {s.id: s for s in spans}
    known = {r.name: r for r in schema.relations}
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in _RELATION_MODELS[model_dir].predict([row])[0]:
        spec = known.get(r["type"])
        if spec is None or not spec.allows(by_id[r["arg1"]].label, by_id[r["arg2"]].label):
            continue
        pair = (r["arg1"], r["arg2"]) if spec.directed else tuple(sorted((r["arg1"], r["arg2"])))
        key = (r["type"], *pair)  # an undirected link predicted both ways counts once, at its better score
        if key not in best or r["score"] > best[key]["score"]:
            best[key] = r
    return replace(doc, spans=spans, relations=tuple(best.values()))
