"""All spaCy ``Doc``/``Span`` extensions used by the clinical-nlp pipeline, declared once.

Span: ``cn_negation``, ``cn_temporality``, ``cn_experiencer`` (attribute values),
``cn_score`` (lowest attribute confidence), ``cn_scores`` (per attribute),
``cn_source`` (rule ids or ``model:<name>@<version>``), ``cn_entity_source``
(which rule/model found the span).
Doc: ``cn_reference_date`` (ISO date of the note, input), ``cn_temporals``
(list of :class:`~clinical_nlp.pipeline.temporal.TemporalExpression`).
"""

from __future__ import annotations

from spacy.tokens import Doc, Span

SPAN_EXTENSIONS = {
    "cn_negation": "affirmed",
    "cn_temporality": "recent",
    "cn_experiencer": "patient",
    "cn_score": None,
    "cn_scores": None,
    "cn_source": None,
    "cn_entity_source": None,
}
DOC_EXTENSIONS = {"cn_reference_date": None, "cn_temporals": None}


def register_extensions() -> None:
    """Declare the extensions (idempotent)."""
    for name, default in SPAN_EXTENSIONS.items():
        if not Span.has_extension(name):
            Span.set_extension(name, default=default)
    for name, default in DOC_EXTENSIONS.items():
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=default)


register_extensions()
