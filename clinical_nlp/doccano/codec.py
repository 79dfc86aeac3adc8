"""Assertion attributes as Doccano span labels: our spans <-> Doccano (start, end, label) triples.

Attributes are extra span labels on exactly the entity's offsets
(``negation:negated``, ``temporality:historical``, ``experiencer:family`` …;
absent = the default value), so annotators see and correct them in the UI.
"""

from __future__ import annotations

from collections.abc import Iterable

from clinical_nlp.config import LabelSchema
from clinical_nlp.errors import DoccanoError
from clinical_nlp.types import ATTRIBUTE_DEFAULTS, ATTRIBUTE_VALUES, Span

ATTRIBUTE_LABEL_SEP = ":"


def attribute_label_names(schema: LabelSchema | None = None) -> list[str]:
    """``negation:negated`` … : one span label per non-default attribute value."""
    names = []
    attrs = schema.attributes if schema is not None and schema.attributes else None
    for attr, values in ATTRIBUTE_VALUES.items():
        allowed = attrs[attr].values if attrs and attr in attrs else values
        default = attrs[attr].default if attrs and attr in attrs else ATTRIBUTE_DEFAULTS[attr]
        names += [f"{attr}{ATTRIBUTE_LABEL_SEP}{v}" for v in allowed if v != default]
    return names


def encode_spans(spans: Iterable[Span]) -> list[tuple[int, int, str]]:
    """Our spans → Doccano (start, end, label) triples, attributes as extra labels."""
    out: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int, str]] = set()
    for s in spans:
        triples = [(s.start, s.end, s.label)]
        for attr, value in sorted(s.attributes.items()):
            if attr in ATTRIBUTE_DEFAULTS and value != ATTRIBUTE_DEFAULTS[attr]:
                triples.append((s.start, s.end, f"{attr}{ATTRIBUTE_LABEL_SEP}{value}"))
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
        name, sep, value = label.partition(ATTRIBUTE_LABEL_SEP)
        if sep and name in ATTRIBUTE_VALUES:
            attrs.setdefault((start, end), {})[name] = value
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
