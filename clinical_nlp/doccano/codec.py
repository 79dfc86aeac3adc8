"""Our spans and relations <-> Doccano's labels: (start, end, label) triples, relation-import rows.

Attributes are extra span labels on exactly the entity's offsets, with the short names of
:mod:`clinical_nlp.io.attribute_labels` (``NEG``, ``POSS``, ``HIST``, ``HYPO``, ``FAM``,
``OTHER``; absent = the default value), so annotators see and correct them in the UI. The long
form (``negation:negated``) of projects created before is read too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from clinical_nlp.config import LabelSchema
from clinical_nlp.consensus.relations import binary_relations, with_span_ids
from clinical_nlp.doccano.offsets import from_doccano
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
    """Doccano triples (UTF-16 offsets, as its UI counts) → our spans; attribute labels attach to
    entity spans on the same offsets.

    An attribute label with no entity span on its offsets, or two values of one attribute on one
    span (``NEG`` and ``POSS``), is an annotator error and raises :class:`DoccanoError` naming them.
    """
    return _decode(text, from_doccano(text, triples))


def _decode(text: str, triples: Iterable[tuple[int, int, str]]) -> tuple[Span, ...]:
    """:func:`decode_triples` on offsets already in code points."""
    entities: list[tuple[int, int, str]] = []
    attrs: dict[tuple[int, int], dict[str, str]] = {}
    for start, end, label in triples:
        pair = parse_attribute_label(label)
        if pair is not None:
            held = attrs.setdefault((start, end), {})
            if held.get(pair[0], pair[1]) != pair[1]:
                both = sorted({attribute_label(pair[0], held[pair[0]]), attribute_label(*pair)})
                raise DoccanoError(f"span [{start}, {end}) has two {pair[0]} labels, {' and '.join(both)}: keep one")
            held[pair[0]] = pair[1]
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


def encode_with_relations(
    spans: Sequence[Span], relations: Iterable[Mapping[str, Any]]
) -> tuple[list[tuple[int, int, str]], list[dict[str, Any]]]:
    """Our spans and relations → Doccano triples and links ``{from_id, to_id, type}`` whose ids are
    positions in the triple list: the arguments' own labels, never an attribute label."""
    triples = encode_spans(spans)
    number = {t: k for k, t in enumerate(triples)}
    by_id = {s.id: s for s in spans if s.id}
    links = []
    for kind, a, b in binary_relations(relations):
        if a not in by_id or b not in by_id:
            raise DoccanoError(f"relation {kind} {a}->{b} refers to a span id that is not among the spans")
        head, tail = by_id[a], by_id[b]
        links.append(
            {
                "from_id": number[(head.start, head.end, head.label)],
                "to_id": number[(tail.start, tail.end, tail.label)],
                "type": kind,
            }
        )
    return triples, links


def decode_export_row(text: str, row: Mapping[str, Any]) -> tuple[tuple[Span, ...], list[dict[str, str]]]:
    """One row of a Doccano JSONL export → our spans (with ids ``T1`` …) and relations over those ids.

    Reads both export shapes: ``label: [[start, end, name]]`` (relations off) and ``entities`` +
    ``relations`` (relations on). A relation whose argument is an attribute label, or is missing,
    raises :class:`DoccanoError` naming it.
    """
    if "entities" not in row:
        triples = [(int(a), int(b), str(lab)) for a, b, lab in row.get("label") or []]
        return with_span_ids(decode_triples(text, triples)), []
    by_number: dict[int, tuple[int, int, str]] = {}
    for ent in row.get("entities") or []:
        by_number[int(ent["id"])] = (int(ent["start_offset"]), int(ent["end_offset"]), str(ent["label"]))
    numbers = list(by_number)
    by_number = dict(zip(numbers, from_doccano(text, [by_number[k] for k in numbers]), strict=True))
    spans = with_span_ids(_decode(text, list(by_number.values())))
    ids = {(s.start, s.end, s.label): str(s.id) for s in spans}
    relations = []
    for rel in row.get("relations") or []:
        ends = [by_number.get(int(rel.get(k, -1))) for k in ("from_id", "to_id")]
        kind = str(rel.get("type"))
        if any(e is None for e in ends):
            raise DoccanoError(f"relation {kind} (Doccano id {rel.get('id')}) links a span that is not on the example")
        for e in ends:
            if e is not None and e not in ids:
                raise DoccanoError(
                    f"relation {kind} links attribute label {e[2]!r} at [{e[0]}, {e[1]}): link the entity span instead"
                )
        head, tail = (ids[e] for e in ends if e is not None)
        relations.append({"type": kind, "arg1": head, "arg2": tail})
    return spans, relations
