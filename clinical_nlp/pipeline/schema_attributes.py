"""Suggest only the assertion attributes a label's schema entry lists.

The assertion step classifies every span, but negation, temporality and experiencer mean nothing on
a ``Value`` ("5 mg") or a ``Negation`` cue, and the label schema says which labels carry which
(``attributes:`` per label; ``Measurement`` has no experiencer). A suggested span keeps its other
attributes (a Temporal span's ``type``/``value``); a label the schema does not know is left as it is.

Example:
    >>> from clinical_nlp.types import Span
    >>> allowed = {"Value": frozenset(), "Condition": frozenset({"negation"})}
    >>> restrict_attributes(Span(0, 4, "Value", "5 mg", {"negation": "negated"}), allowed).attributes
    {}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from clinical_nlp.config import LabelSchema, load_label_schema
from clinical_nlp.types import Span

ASSERTION_ATTRIBUTES = frozenset({"negation", "temporality", "experiencer"})


def schema_attributes(schema: LabelSchema | None = None) -> dict[str, frozenset[str]]:
    """Label name -> the assertion attributes its schema entry lists (default: the shipped schema)."""
    schema = schema or load_label_schema()
    return {lab.name: frozenset(lab.attributes) & ASSERTION_ATTRIBUTES for lab in schema.labels}


def restrict_attributes(span: Span, allowed: Mapping[str, frozenset[str]]) -> Span:
    """``span`` without the assertion attributes its label does not carry."""
    keep = allowed.get(span.label)
    if keep is None:
        return span
    drop = [k for k in span.attributes if k in ASSERTION_ATTRIBUTES and k not in keep]
    if not drop:
        return span
    return replace(span, attributes={k: v for k, v in span.attributes.items() if k not in drop})
