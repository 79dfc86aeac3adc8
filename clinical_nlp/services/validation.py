"""One validation gate for every write of annotations or decisions into the store.

Ingest of gold, Doccano pull, adjudication decisions and QA reviews all pass
through here, so the same input is judged the same way everywhere:

* spans: offsets inside the note text, the claimed text equal to the covered text
  (filled in when empty), the label in the label schema, each attribute allowed for
  that label and its value one of the attribute's values;
* people: registered in the annotator registry, with the role (expert) and the
  qualifications (the schema's ``requires`` per label) the action needs.

:func:`span_problems` returns the problems so that a caller can route them (pull
reports them per note and annotator); :func:`check_spans` raises one
:class:`~clinical_nlp.errors.InputFormatError` naming every problem.

Example:
    >>> from clinical_nlp.config import load_label_schema
    >>> from clinical_nlp.types import Note, Span
    >>> spans, problems = span_problems(Note("n1", "No fever."), [Span(3, 8, "Condition")], load_label_schema())
    >>> spans[0].text, problems
    ('fever', [])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from clinical_nlp.config import LabelSchema
from clinical_nlp.errors import InputFormatError, OffsetMismatchError, PolicyError
from clinical_nlp.types import Note, Span, span_surface

__all__ = ["check_spans", "coerce_spans", "require_person", "span_problems", "trim_white_space"]


def coerce_spans(raw: Any, *, where: str) -> list[Span]:
    """Turn a JSON list of span records (or :class:`Span` objects) into spans, naming ``where`` on error."""
    if not isinstance(raw, (list, tuple)):
        raise InputFormatError(f"{where}: expected a list of spans, got {type(raw).__name__}")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, Span):
            out.append(item)
        elif isinstance(item, Mapping):
            try:
                out.append(Span.from_dict(item))
            except (OffsetMismatchError, ValueError) as exc:
                raise InputFormatError(f"{where}: span #{i}: {exc}") from None
        else:
            raise InputFormatError(f"{where}: span #{i} is a {type(item).__name__}, not an object")
    return out


def _one_span(text: str, span: Span, schema: LabelSchema, names: set[str]) -> tuple[Span, str | None]:
    where = f"[{span.start}, {span.end}) {span.label!r}"
    if span.start < 0 or span.end <= span.start:
        return span, f"{where}: impossible offsets (need 0 <= start < end)"
    if span.end > len(text):
        return span, f"{where}: ends beyond the text ({len(text)} characters)"
    for a, b in span.fragments or ():
        if a < 0 or b <= a or b > len(text):
            return span, f"{where}: fragment [{a}, {b}) is outside the text ({len(text)} characters)"
    if span.label not in names:
        return span, f"{where}: label {span.label!r} is not in the label schema (known: {', '.join(sorted(names))})"
    allowed = set(schema.label(span.label).attributes)
    for key, value in span.attributes.items():
        if key not in allowed:
            return span, f"{where}: attribute {key!r} is not allowed on {span.label!r} (allowed: {sorted(allowed)})"
        values = schema.attributes[key].values if key in schema.attributes else []
        if value not in values:
            return span, f"{where}: {key}={value!r} is not one of {values}"
    covered = span_surface(text, span)
    if not covered.strip():
        return span, f"{where}: covers only white space ({covered!r})"
    if not span.text:
        return replace(span, text=covered), None
    if span.fragments is None and covered != span.text:
        return span, f"{where}: covers {covered!r} but claims {span.text!r}"
    if span.fragments is not None and sorted(covered.split()) != sorted(span.text.split()):
        return span, f"{where}: fragments cover {covered!r} but claim {span.text!r}"
    return span, None


def trim_white_space(text: str, spans: Iterable[Span]) -> list[Span]:
    """Each span without the white space at its edges (a drag in Doccano's UI takes the space after a word;
    "fever " and "fever" are one answer); a span of white space only, or with fragments, is left as it is.

    >>> [s.text for s in trim_white_space("a fever  now", [Span(1, 9, "Condition", " fever  ")])]
    ['fever']
    """
    out = []
    for span in spans:
        covered = text[span.start : span.end]
        start = span.start + len(covered) - len(covered.lstrip())
        end = span.end - (len(covered) - len(covered.rstrip()))
        if span.fragments is None and start < end and (start, end) != (span.start, span.end):
            span = replace(span, start=start, end=end, text=text[start:end])
        out.append(span)
    return out


def span_problems(note: Note, spans: Iterable[Span], schema: LabelSchema) -> tuple[list[Span], list[str]]:
    """``(valid spans with text filled in, one message per invalid span)``; duplicates count as problems."""
    names = set(schema.label_names)
    good: list[Span] = []
    problems: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    for span in spans:
        checked, problem = _one_span(note.text, span, schema, names)
        if problem is not None:
            problems.append(problem)
            continue
        key = (checked.start, checked.end, checked.label, checked.fragments)
        if key in seen:
            problems.append(f"[{span.start}, {span.end}) {span.label!r}: the same span twice")
            continue
        seen.add(key)
        good.append(checked)
    return good, problems


def check_spans(note: Note, spans: Iterable[Span], schema: LabelSchema, *, who: str) -> tuple[Span, ...]:
    """The spans with text filled in; raises :class:`InputFormatError` naming the note, ``who`` and every problem."""
    good, problems = span_problems(note, spans, schema)
    if problems:
        raise InputFormatError(f"note {note.id!r} ({who}): " + "; ".join(problems))
    return tuple(good)


def require_person(
    store: Any,
    name: str,
    *,
    action: str,
    expert: bool = False,
    labels: Sequence[str] = (),
    schema: LabelSchema | None = None,
    guideline_version: str | None = None,
) -> Any:
    """The registered annotator ``name``; :class:`PolicyError` when unknown, not an expert (if ``expert``)
    or missing a qualification that one of ``labels`` requires."""
    from clinical_nlp.annotators import Registry, missing_qualifications

    person = Registry(store).find(name)
    if person is None:
        raise PolicyError(f"{action}: {name!r} is not registered (clinical-nlp annotators add {name} ...)")
    if expert and not person.is_expert:
        raise PolicyError(f"{action}: {name!r} is registered as {person.role!r}, not as an expert")
    if labels:
        missing = missing_qualifications(person, labels, schema, guideline_version=guideline_version)
        if missing:
            detail = "; ".join(f"{lab}: {', '.join(q)}" for lab, q in sorted(missing.items()))
            raise PolicyError(f"{action}: {name!r} lacks qualifications for {detail}")
    return person
