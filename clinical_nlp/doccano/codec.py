"""Assertion attributes as Doccano span labels: our spans <-> Doccano (start, end, label) triples.

Attributes are extra span labels on exactly the entity's offsets, with the short names of
:mod:`clinical_nlp.io.attribute_labels` (``NEG``, ``POSS``, ``HIST``, ``HYPO``, ``FAM``,
``OTHER``; absent = the default value), so annotators see and correct them in the UI. The long
form (``negation:negated``) of projects created before is read too.
"""

from __future__ import annotations

from collections.abc import Iterable

from clinical_nlp.config import LabelSchema
from clinical_nlp.errors import ConfigError, DoccanoError
from clinical_nlp.io.attribute_labels import attribute_label, parse_attribute_label
from clinical_nlp.types import ATTRIBUTE_DEFAULTS, ATTRIBUTE_VALUES, Span


def attribute_pairs(schema: LabelSchema | None = None) -> list[tuple[str, str]]:
    """``(attribute, value)`` for every non-default attribute value of the schema, in schema order."""
    pairs = []
    attrs = schema.attributes if schema is not None and schema.attributes else None
    for attr, values in ATTRIBUTE_VALUES.items():
        allowed = attrs[attr].values if attrs and attr in attrs else values
        default = attrs[attr].default if attrs and attr in attrs else ATTRIBUTE_DEFAULTS[attr]
        pairs += [(attr, v) for v in allowed if v != default]
    return pairs


def attribute_label_names(schema: LabelSchema | None = None) -> list[str]:
    """``NEG``, ``POSS`` … : one span label per non-default attribute value. ConfigError when an entity
    label of the schema has the same name (it would read as an attribute)."""
    names = [attribute_label(a, v) for a, v in attribute_pairs(schema)]
    clash = sorted(set(names) & set(schema.label_names)) if schema is not None else []
    if clash:
        raise ConfigError(f"label schema: entity label(s) {clash} clash with attribute label names")
    return names


def encode_spans(spans: Iterable[Span]) -> list[tuple[int, int, str]]:
    """Our spans → Doccano (start, end, label) triples, attributes as extra labels."""
    out: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int, str]] = set()
    for s in spans:
        triples = [(s.start, s.end, s.label)]
        for attr, value in sorted(s.attributes.items()):
            if attr in ATTRIBUTE_DEFAULTS and value != ATTRIBUTE_DEFAULTS[attr]:
                triples.append((s.start, s.end, attribute_label(attr, value)))
        for t in triples:
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


def decode_triples(text: str, triples: Iterable[tuple[int, int, str]]) -> tuple[Span, ...]:
    """Doccano triples → our spans; attribute labels attach to entity spans on the same offsets.

    An attribute label with no entity span on its offsets is an annotator error
    and raises :class:`DoccanoError` naming the offsets.
    """
    entities: list[tuple[int, int, str]] = []
    attrs: dict[tuple[int, int], dict[str, str]] = {}
    for start, end, label in triples:
        pair = parse_attribute_label(label)
        if pair is not None:
            attrs.setdefault((start, end), {})[pair[0]] = pair[1]
        else:
            entities.append((start, end, label))
    covered = {(a, b) for a, b, _ in entities}
    for key in attrs:
        if key not in covered:
            raise DoccanoError(
                f"attribute label(s) {attrs[key]} at [{key[0]}, {key[1]}) have no entity span on the same offsets"
            )
    spans = [Span(a, b, lab, text[a:b], dict(attrs.get((a, b), {}))) for a, b, lab in sorted(set(entities))]
    return tuple(spans)
