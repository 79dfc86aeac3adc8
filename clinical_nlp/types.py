"""Core data model: notes, spans and annotation records (frozen, typed)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from clinical_nlp.errors import OffsetMismatchError

Assertion = Literal["affirmed", "negated", "possible"]
Temporality = Literal["recent", "historical", "hypothetical"]
Experiencer = Literal["patient", "family", "other"]

#: Attribute names and their allowed values (the label schema may restrict them further).
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "negation": ("affirmed", "negated", "possible"),
    "temporality": ("recent", "historical", "hypothetical"),
    "experiencer": ("patient", "family", "other"),
}
#: Value assumed when an attribute is absent.
ATTRIBUTE_DEFAULTS: dict[str, str] = {
    "negation": "affirmed",
    "temporality": "recent",
    "experiencer": "patient",
}


@dataclass(frozen=True, slots=True)
class Note:
    """A clinical document.

    Example:
        >>> Note("n1", "No fever.", {"patient": "p1", "date": "2024-01-02"}).patient
        'p1'
    """

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def patient(self) -> str | None:
        value = self.metadata.get("patient")
        return None if value is None else str(value)

    @property
    def date(self) -> str | None:
        value = self.metadata.get("date")
        return None if value is None else str(value)

    @property
    def note_type(self) -> str | None:
        value = self.metadata.get("note_type")
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Span:
    """A labelled character range ``[start, end)`` of a note's exact text.

    ``fragments`` holds the pieces of a discontinuous span (sorted by position);
    ``start``/``end`` are then the outer bounds. ``attributes`` maps attribute
    names (``negation``, ``temporality``, ``experiencer`` …) to values.

    Example:
        >>> s = Span(3, 8, "Condition", "fever", {"negation": "negated"})
        >>> s.negation
        'negated'
    """

    start: int
    end: int
    label: str
    text: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    score: float | None = None
    source: str | None = None
    fragments: tuple[tuple[int, int], ...] | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.start, int) or not isinstance(self.end, int):
            raise OffsetMismatchError(f"span offsets must be integers, got {self.start!r}, {self.end!r}")
        if self.start < 0 or self.end <= self.start:
            raise OffsetMismatchError(f"span {self.label!r} has invalid offsets [{self.start}, {self.end})")
        if self.fragments is not None:
            frags = tuple(sorted((int(a), int(b)) for a, b in self.fragments))
            for a, b in frags:
                if a < self.start or b > self.end or b <= a:
                    raise OffsetMismatchError(
                        f"span {self.label!r} fragment [{a}, {b}) outside [{self.start}, {self.end})"
                    )
            object.__setattr__(self, "fragments", frags if len(frags) > 1 else None)

    # convenience accessors -------------------------------------------------
    @property
    def negation(self) -> str:
        return self.attributes.get("negation", ATTRIBUTE_DEFAULTS["negation"])

    @property
    def temporality(self) -> str:
        return self.attributes.get("temporality", ATTRIBUTE_DEFAULTS["temporality"])

    @property
    def experiencer(self) -> str:
        return self.attributes.get("experiencer", ATTRIBUTE_DEFAULTS["experiencer"])

    @property
    def is_discontinuous(self) -> bool:
        return self.fragments is not None

    @property
    def pieces(self) -> tuple[tuple[int, int], ...]:
        """The covered character ranges (one piece for a contiguous span)."""
        return self.fragments if self.fragments is not None else ((self.start, self.end),)

    def key(self) -> tuple[int, int, str]:
        """Identity used for matching: boundaries and label."""
        return (self.start, self.end, self.label)

    def with_attributes(self, **values: str) -> Span:
        merged = dict(self.attributes)
        merged.update(values)
        return replace(self, attributes=merged)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "text": self.text,
        }
        out.update(self.attributes)
        if self.score is not None:
            out["score"] = self.score
        if self.source is not None:
            out["source"] = self.source
        if self.fragments is not None:
            out["fragments"] = [list(f) for f in self.fragments]
        if self.id is not None:
            out["id"] = self.id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, attribute_names: Iterable[str] | None = None) -> Span:
        """Build a span from a JSON record; attributes may be flat keys or an ``attributes`` dict."""
        try:
            start, end, label = int(data["start"]), int(data["end"]), str(data["label"])
        except KeyError as exc:
            raise OffsetMismatchError(f"span record misses field {exc.args[0]!r}: {dict(data)!r}") from None
        except (TypeError, ValueError):
            raise OffsetMismatchError(f"span record has non-integer offsets: {dict(data)!r}") from None
        names = tuple(attribute_names) if attribute_names is not None else tuple(ATTRIBUTE_VALUES)
        attrs: dict[str, str] = {}
        nested = data.get("attributes")
        if isinstance(nested, Mapping):
            attrs.update({str(k): str(v) for k, v in nested.items() if v is not None})
        for name in names:
            if data.get(name) is not None:
                attrs[name] = str(data[name])
        frags = data.get("fragments")
        return cls(
            start=start,
            end=end,
            label=label,
            text=str(data.get("text", "")),
            attributes=attrs,
            score=None if data.get("score") is None else float(data["score"]),
            source=None if data.get("source") is None else str(data["source"]),
            fragments=None if not frags else tuple((int(a), int(b)) for a, b in frags),
            id=None if data.get("id") is None else str(data["id"]),
        )


def span_surface(text: str, span: Span) -> str:
    """The note text a span covers (fragments joined with a single space)."""
    return " ".join(text[a:b] for a, b in span.pieces)


def verify_span(text: str, span: Span, *, doc_id: str, strict_text: bool = True) -> Span:
    """Check that ``span`` lies inside ``text`` and covers ``span.text``.

    Returns the span with ``text`` filled in when it was empty. Raises
    :class:`OffsetMismatchError` naming the document and the span otherwise.
    """
    if span.end > len(text):
        raise OffsetMismatchError(
            f"document {doc_id!r}: span {span.label!r} [{span.start}, {span.end}) "
            f"ends beyond the text (length {len(text)})"
        )
    if span.fragments is None:
        covered = text[span.start : span.end]
        if not span.text:
            return replace(span, text=covered)
        if strict_text and covered != span.text:
            raise OffsetMismatchError(
                f"document {doc_id!r}: span {span.label!r} [{span.start}, {span.end}) covers "
                f"{covered!r} but claims {span.text!r}"
            )
        return span
    pieces = [text[a:b] for a, b in span.fragments]
    if not span.text:
        return replace(span, text=" ".join(pieces))
    if strict_text and sorted(span.text.split()) != sorted(" ".join(pieces).split()):
        raise OffsetMismatchError(
            f"document {doc_id!r}: discontinuous span {span.label!r} fragments {list(span.fragments)} "
            f"cover {pieces!r} but claim {span.text!r}"
        )
    return span


@dataclass(frozen=True, slots=True)
class AnnotatedNote:
    """A note with its spans (the unit every corpus format reads and writes)."""

    note: Note
    spans: tuple[Span, ...] = ()
    relations: tuple[Mapping[str, Any], ...] = ()

    @property
    def id(self) -> str:
        return self.note.id

    @property
    def text(self) -> str:
        return self.note.text

    def verified(self) -> AnnotatedNote:
        spans = tuple(verify_span(self.note.text, s, doc_id=self.note.id) for s in self.spans)
        return replace(self, spans=spans)

    def keeping_labels(self, labels: Iterable[str]) -> AnnotatedNote:
        """A copy without the spans of other labels and without the relations that name one of them.

        >>> doc = AnnotatedNote(Note("a", "no pain"), (Span(0, 2, "Cue", id="T1"), Span(3, 7, "Condition", id="T2")),
        ...                     ({"type": "Has_negation", "arg1": "T2", "arg2": "T1"},))
        >>> kept = doc.keeping_labels(["Condition"])
        >>> [s.label for s in kept.spans], kept.relations
        (['Condition'], ())
        """
        keep = set(labels)
        gone = {str(s.id) for s in self.spans if s.label not in keep and s.id is not None}
        spans = tuple(s for s in self.spans if s.label in keep)

        def names_gone(rel: Mapping[str, Any]) -> bool:
            args = rel["args"] if "args" in rel else [rel.get("arg1"), rel.get("arg2")]
            return bool(gone & {str(a) for a in args})

        return replace(self, spans=spans, relations=tuple(r for r in self.relations if not names_gone(r)))


def _utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotator's (or model's) labels on one item, with provenance.

    ``payload`` is the modality's content: a tuple of :class:`Span` for text,
    a mapping for imaging/signal labels. ``source`` is ``"human"`` or
    ``"model:<name>@<version>"``.
    """

    item: str
    annotator: str
    payload: tuple[Span, ...] | Mapping[str, Any]
    source: str = "human"
    guideline_version: str | None = None
    round: int | None = None
    timestamp: str = field(default_factory=_utcnow)
    model_version: str | None = None
    edits: Mapping[str, Any] | None = None
    #: text only: ``{"type", "arg1", "arg2"}`` over the ids of the payload's spans
    relations: tuple[Mapping[str, Any], ...] = ()

    @property
    def spans(self) -> tuple[Span, ...]:
        return self.payload if isinstance(self.payload, tuple) else ()
